"""Build the JSONL files of llem's shipped quality tasks (llem/quality/tasks/).

Run once; the output is committed so that the tasks work offline. Deterministic: the same lists
and seed give byte-identical files (tests/quality/test_tasks.py checks the committed files
against this script).

    python scripts/build_quality_tasks.py           # rewrite the files
    python scripts/build_quality_tasks.py --check   # exit 1 if the committed files differ

Design of ``llem_easy_mc`` (multiple choice, scored by loglikelihood):
- easy general-knowledge questions that a ~100M-parameter instruct model answers well above
  chance, so that accuracy measured on a small model says something (random weights score at
  chance; the tests measure both);
- four single-word choices per question; the three distractors are drawn from the same category's
  answers (other capitals for a capital, other colours for a colour), so that no surface feature
  (length, category, frequency of the word) gives the answer away. ``tests/quality/test_tasks.py``
  checks that "pick the shortest choice" (which is what a model with random weights tends to do,
  since every token costs it about log(vocab) nats) scores near chance;
- the position of the correct answer is shuffled with a fixed seed, and so is the order of the
  rows, so that ``quality.limit=N`` (lm-eval takes the first N) samples every category.

``llem_easy_gen`` (generation, scored by exact match): short questions whose answer is one word,
answered after two worked examples given in the task's description.
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "llem" / "quality" / "tasks"
SEED = 2026_12_07

# (category, question, answer). A category's answers form the distractor pool for its questions.
CAPITALS = [
    ("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"),
    ("England", "London"), ("Russia", "Moscow"), ("China", "Beijing"), ("Egypt", "Cairo"),
    ("Greece", "Athens"), ("Portugal", "Lisbon"), ("Ireland", "Dublin"), ("Austria", "Vienna"),
    ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Denmark", "Copenhagen"),
    ("Poland", "Warsaw"), ("Hungary", "Budapest"), ("Canada", "Ottawa"), ("Kenya", "Nairobi"),
    ("Thailand", "Bangkok"), ("South Korea", "Seoul"), ("Peru", "Lima"), ("Cuba", "Havana"),
    ("Belgium", "Brussels"), ("the Netherlands", "Amsterdam"), ("the Czech Republic", "Prague"),
    ("Iceland", "Reykjavik"), ("Vietnam", "Hanoi"),
]
COLOURS = [
    ("What colour is the sky on a clear sunny day?", "blue"), ("What colour is fresh grass?", "green"),
    ("What colour is snow?", "white"), ("What colour is coal?", "black"),
    ("What colour is a ripe banana?", "yellow"), ("What colour is a ripe tomato?", "red"),
    ("What colour is milk?", "white"), ("What colour is blood?", "red"),
    ("What colour is milk chocolate?", "brown"), ("What colour is a carrot?", "orange"),
    ("What colour are leaves in summer?", "green"), ("What colour is a fire truck?", "red"),
    ("What colour is the sea in most pictures?", "blue"), ("What colour is a lemon?", "yellow"),
    ("What colour is the night sky?", "black"),
]
COLOUR_POOL = ["blue", "green", "white", "black", "yellow", "red", "brown", "orange", "pink", "purple", "grey"]
OPPOSITES = [
    ("hot", "cold"), ("up", "down"), ("big", "small"), ("fast", "slow"), ("day", "night"), ("happy", "sad"),
    ("open", "closed"), ("wet", "dry"), ("light", "dark"), ("high", "low"), ("early", "late"),
    ("full", "empty"), ("hard", "soft"), ("left", "right"), ("rich", "poor"), ("strong", "weak"),
    ("thick", "thin"), ("win", "lose"), ("push", "pull"), ("buy", "sell"),
]
ANIMALS = [
    ("Which animal says moo?", "cow"), ("Which animal barks?", "dog"), ("Which animal meows?", "cat"),
    ("Which animal says oink?", "pig"), ("Which animal says quack?", "duck"),
    ("Which animal neighs?", "horse"), ("Which animal has a very long neck?", "giraffe"),
    ("Which animal has a trunk?", "elephant"), ("Which animal is called the king of the jungle?", "lion"),
    ("Which animal hops and carries its baby in a pouch?", "kangaroo"), ("Which insect makes honey?", "bee"),
    ("Which animal spins webs?", "spider"), ("Which animal has black and white stripes?", "zebra"),
    ("Which animal gives us wool?", "sheep"), ("Which bird hoots at night?", "owl"),
    ("Which animal has a hump and lives in the desert?", "camel"),
    ("Which black and white animal eats bamboo?", "panda"), ("Which animal has no legs and hisses?", "snake"),
    ("Which animal is known as man's best friend?", "dog"), ("Which animal lives in water and breathes with gills?", "fish"),
]
NUMBERS = [
    ("What is two plus two?", "four"), ("What is one plus one?", "two"), ("What is three plus three?", "six"),
    ("What is five minus two?", "three"), ("How many legs does a dog have?", "four"),
    ("How many days are in a week?", "seven"), ("How many months are in a year?", "twelve"),
    ("How many wheels does a bicycle have?", "two"), ("How many legs does a spider have?", "eight"),
    ("How many sides does a triangle have?", "three"), ("How many sides does a square have?", "four"),
    ("How many fingers are on one hand?", "five"), ("What is ten minus one?", "nine"),
    ("What number comes after five?", "six"), ("What number comes before ten?", "nine"),
    ("How many eyes does a person have?", "two"), ("How many legs does an insect have?", "six"),
    ("What is half of ten?", "five"), ("What is one plus zero?", "one"), ("What number comes after nine?", "ten"),
]
NUMBER_POOL = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
DAYS = [
    ("What day comes after Monday?", "Tuesday"), ("What day comes after Friday?", "Saturday"),
    ("What day comes before Saturday?", "Friday"), ("What day comes after Wednesday?", "Thursday"),
    ("What day comes after Saturday?", "Sunday"), ("What day comes after Sunday?", "Monday"),
]
DAY_POOL = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = [
    ("What month comes after January?", "February"), ("What is the first month of the year?", "January"),
    ("What is the last month of the year?", "December"), ("What month comes after April?", "May"),
    ("What month comes after June?", "July"), ("In which month is Christmas Day?", "December"),
]
MONTH_POOL = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
              "November", "December"]
SEASONS = [
    ("Which season is the coldest?", "winter"), ("Which season is the hottest?", "summer"),
    ("In which season do flowers start to bloom?", "spring"), ("In which season does it usually snow?", "winter"),
]
SEASON_POOL = ["winter", "summer", "spring", "autumn"]
BODY = [
    ("What do we see with?", "eyes"), ("What do we hear with?", "ears"), ("What do we smell with?", "nose"),
    ("Which organ pumps blood around the body?", "heart"), ("What do we think with?", "brain"),
    ("What do we chew food with?", "teeth"), ("What do we wear gloves on?", "hands"),
    ("What do we wear socks on?", "feet"), ("What do we breathe with?", "lungs"),
    ("What grows on top of your head?", "hair"),
]
THINGS = [
    ("What do bees make?", "honey"), ("What do cows give us to drink?", "milk"),
    ("What is frozen water called?", "ice"), ("What do we sleep in at night?", "bed"),
    ("What do you use to cut paper?", "scissors"), ("What do we wear on our feet when we go outside?", "shoes"),
    ("What do you use to unlock a door?", "key"), ("What shines in the sky during the day?", "sun"),
    ("What shines in the sky at night?", "moon"), ("What do birds use to fly?", "wings"),
    ("What do fish live in?", "water"), ("What do you read?", "book"), ("What do we use to write?", "pen"),
    ("What do you call a baby dog?", "puppy"), ("What do you call a baby cat?", "kitten"),
    ("What do we use to tell the time?", "clock"),
    ("What do you sit on?", "chair"),
    ("What do you use an umbrella for?", "rain"),
]
THING_POOL = sorted({a for _, a in THINGS} | {"spoon", "window", "table", "shirt"})
PLACES = [
    ("Where does a doctor work?", "hospital"), ("Where do children go to learn?", "school"),
    ("Where can you borrow books?", "library"), ("Where do planes take off?", "airport"),
    ("Where do trains stop?", "station"), ("Where do you go to see animals from around the world?", "zoo"),
    ("Where do fish swim besides rivers?", "sea"), ("Where do you cook food at home?", "kitchen"),
]
PLACE_POOL = ["hospital", "school", "library", "airport", "station", "zoo", "sea", "kitchen", "bank", "church",
              "garden", "beach"]


def _mc_items() -> list[tuple[str, str, list[str]]]:
    """(category, question, pool) for every question; the answer is the pool's first entry."""
    items: list[tuple[str, str, str, list[str]]] = []
    caps = [c for _, c in CAPITALS]
    items += [("capitals", f"What is the capital of {country}?", city, caps) for country, city in CAPITALS]
    items += [("colours", q, a, COLOUR_POOL) for q, a in COLOURS]
    opp = sorted({w for pair in OPPOSITES for w in pair})
    items += [("opposites", f"What is the opposite of {w}?", a, [x for x in opp if x != w]) for w, a in OPPOSITES]
    animals = sorted({a for _, a in ANIMALS})
    items += [("animals", q, a, animals) for q, a in ANIMALS]
    items += [("numbers", q, a, NUMBER_POOL) for q, a in NUMBERS]
    items += [("days", q, a, DAY_POOL) for q, a in DAYS]
    items += [("months", q, a, MONTH_POOL) for q, a in MONTHS]
    items += [("seasons", q, a, SEASON_POOL) for q, a in SEASONS]
    body = sorted({a for _, a in BODY})
    items += [("body", q, a, body) for q, a in BODY]
    items += [("things", q, a, THING_POOL) for q, a in THINGS]
    items += [("places", q, a, PLACE_POOL) for q, a in PLACES]
    return items


def build_mc(rng: random.Random) -> list[dict]:
    rows = []
    for i, (cat, q, answer, pool) in enumerate(_mc_items()):
        distractors = rng.sample(sorted(set(pool) - {answer}), 3)
        choices = distractors + [answer]
        rng.shuffle(choices)
        rows.append({"id": f"mc-{i:03d}", "category": cat, "question": q, "choices": choices,
                     "answer": choices.index(answer)})
    # rows in a seeded random order, so that quality.limit=N (the first N) samples every category
    random.Random(SEED + 1).shuffle(rows)
    return rows


GEN = [
    ("What is the capital of France?", "Paris"), ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Italy?", "Rome"), ("What is the capital of Germany?", "Berlin"),
    ("What is the capital of Spain?", "Madrid"), ("What is the capital of England?", "London"),
    ("What is the capital of Russia?", "Moscow"), ("What is the capital of Egypt?", "Cairo"),
    ("What is the capital of Greece?", "Athens"), ("What is the capital of China?", "Beijing"),
    ("What colour is snow?", "white"), ("What colour is grass?", "green"), ("What colour is the sky?", "blue"),
    ("What colour is a banana?", "yellow"), ("What colour is coal?", "black"),
    ("What is the opposite of hot?", "cold"), ("What is the opposite of up?", "down"),
    ("What is the opposite of big?", "small"), ("What is the opposite of day?", "night"),
    ("What is the opposite of fast?", "slow"), ("What is the opposite of open?", "closed"),
    ("Which animal says moo?", "cow"), ("Which animal barks?", "dog"), ("Which animal meows?", "cat"),
    ("Which animal has a trunk?", "elephant"), ("Which insect makes honey?", "bee"),
    ("How many days are in a week?", "seven"), ("How many legs does a dog have?", "four"),
    ("What is two plus two?", "four"), ("What is one plus one?", "two"),
    ("What day comes after Monday?", "Tuesday"), ("What month comes after January?", "February"),
    ("Which season is the coldest?", "winter"), ("What is frozen water called?", "ice"),
    ("What do bees make?", "honey"), ("What do cows give us to drink?", "milk"),
    ("What shines in the sky during the day?", "sun"), ("What do we see with?", "eyes"),
    ("What do we hear with?", "ears"), ("Which organ pumps blood?", "heart"),
]


def build_gen() -> list[dict]:
    rows = [{"id": f"gen-{i:03d}", "question": q, "answer": a} for i, (q, a) in enumerate(GEN)]
    random.Random(SEED + 2).shuffle(rows)  # as above: the first N are a mix
    return rows


def render() -> dict[str, str]:
    rng = random.Random(SEED)
    mc = build_mc(rng)
    gen = build_gen()
    dump = lambda rows: "".join(json.dumps(r, ensure_ascii=True) + "\n" for r in rows)  # noqa: E731
    return {"llem_easy_mc.jsonl": dump(mc), "llem_easy_gen.jsonl": dump(gen)}


def main(argv: list[str]) -> int:
    files = render()
    if "--check" in argv:
        bad = [n for n, text in files.items() if not (OUT / n).is_file() or (OUT / n).read_text() != text]
        if bad:
            print(f"build_quality_tasks.py: {', '.join(bad)} differ from the script's output", file=sys.stderr)
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name} ({text.count(chr(10))} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
