"""The leaderboard site (docs/site.md) served by ``llem serve`` at /site/: the shipped page with its
data-source setting pointed at this server's leaderboard files, its assets from memory, its own
Content-Security-Policy; and the job files its job pages read, for studies that share an id too."""
import html
import json
import re
from urllib.parse import urljoin

from llem.results.site import ASSETS
from llem.serve.app import SITE_DATA_URL
from tests.serve.conftest import bearer

DATA_META = re.compile(r'<meta\s+name="llem-data-url"\s+content="([^"]*)"')


def test_the_served_page_reads_the_api_leaderboard(client):
    shipped = (ASSETS / "index.html").read_text()
    assert DATA_META.search(shipped).group(1) == "data/index.json"  # what a static site reads
    for path in ("/site/", "/site/index.html"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        page = r.text
        (url,) = DATA_META.findall(page)
        # resolved against the page's address, it is this server's leaderboard index, on the same origin
        assert url == SITE_DATA_URL and urljoin(f"http://127.0.0.1:8000{path}", url) == \
            "http://127.0.0.1:8000/leaderboard/index.json"
        assert client.get(urljoin(path, url)).json()["schema"] == "llem.leaderboard.index"
        # nothing else of the page changed
        assert DATA_META.sub("", page) == DATA_META.sub("", shipped)
    r = client.get("/site", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "site/"


def test_the_site_assets_and_its_policy(client):
    page = client.get("/site/")
    refs = re.findall(r'(?:src|href)="\./(assets/[^"]+)"', page.text)
    assert len(refs) >= 2 and len(list((ASSETS / "assets").iterdir())) >= len(refs)
    for f in (ASSETS / "assets").iterdir():
        r = client.get(f"/site/assets/{f.name}")
        assert r.status_code == 200 and r.content == f.read_bytes()
        want = "text/javascript" if f.suffix == ".js" else "text/css" if f.suffix == ".css" else None
        assert want is None or r.headers["content-type"].startswith(want)
        assert r.headers["x-content-type-options"] == "nosniff"
    for name in ("nope.js", "..%2Findex.html", "%2e%2e"):
        assert client.get(f"/site/assets/{name}").status_code in (404, 422)
    # one policy, the page's own (its meta tag), plus frame-ancestors, which only a header can carry;
    # connect-src 'self' holds because the data is on the page's own origin
    meta = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page.text).group(1))
    assert page.headers.get_list("content-security-policy") == [meta.rstrip("; ") + "; frame-ancestors 'none'"]
    policy = page.headers["content-security-policy"]
    assert "connect-src 'self'" in policy and "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert page.headers["x-frame-options"] == "DENY"
    # the live page links to the site; its own policy is unchanged
    live = client.get("/")
    assert 'href="/site/"' in live.text and "default-src 'none'" in live.headers["content-security-policy"]


def test_two_studies_with_one_id_keep_their_own_job_files(client, tokens, study_dir, tmp_path):
    import shutil

    from llem.results.remote import build_upload

    again = tmp_path / "again"
    shutil.copytree(study_dir, again)
    m = json.loads((again / "manifest.json").read_text())
    m["created_at"] = "2026-12-07T10:00:00+00:00"  # the same design, run again: the same export id
    (again / "manifest.json").write_text(json.dumps(m))
    urls = []
    for d in (study_dir, again):
        r = client.post("/api/v1/uploads", content=build_upload(d)[0], headers=bearer(tokens["alice"]))
        assert r.status_code == 201, r.text
        urls.append(r.json()["leaderboard_url"])
    first, second = (client.get(u).json() for u in urls)
    assert first["study"]["id"] == second["study"]["id"] and urls[1].endswith(f"/{first['study']['id']}-2.json")
    folders = {d["entries"][0]["detail"].split("/")[0] for d in (first, second)}
    assert folders == {first["study"]["id"], first["study"]["id"] + "-2"}
    for doc in (first, second):
        for e in doc["entries"]:
            job = client.get(f"/leaderboard/{e['detail']}").json()
            assert job["entry"] == e and job["study"] == {"id": doc["study"]["id"], "name": doc["study"]["name"]}
