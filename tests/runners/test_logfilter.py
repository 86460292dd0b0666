import logging

from llem.runners.logfilter import collapse_repeats


def test_a_message_repeated_per_forward_pass_is_written_a_few_times_then_counted(caplog):
    root = logging.getLogger()
    caplog.set_level(logging.INFO)
    noisy = logging.getLogger("bitsandbytes.autograd._functions")
    with collapse_repeats(limit=3):
        for _ in range(50):
            noisy.warning("MatMul8bitLt: inputs will be cast from torch.bfloat16 to float16 during quantization")
        logging.getLogger("llem").info("cycle 1/3")
    msgs = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("MatMul8bitLt") for m in msgs) == 3
    assert "cycle 1/3" in msgs
    assert any(m.startswith("47 more log records from bitsandbytes.autograd._functions") for m in msgs)
    # the filter is gone afterwards: nothing else is ever held back
    assert all(not h.filters or all(type(f).__name__ != "RepeatFilter" for f in h.filters) for h in root.handlers)
