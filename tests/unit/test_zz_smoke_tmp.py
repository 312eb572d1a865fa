import json, time
from tests.conftest import penguins_bytes


def test_smoke(aws):
    aws.put_spec("penguins", {"target": "species"})
    t = time.perf_counter()
    state = aws.run_pipeline("penguins", penguins_bytes())
    print("elapsed", time.perf_counter() - t)
    print(json.dumps(state["run"], indent=1)[:3000])
    print(json.dumps(state["trained"], indent=1)[:3000])
    print(json.dumps(state["evaluation"], indent=1)[:6000])
    v = aws.promote(state)
    state2 = aws.run_pipeline("penguins", penguins_bytes())
    print(
        json.dumps(
            {k: state2["evaluation"][k] for k in ("decision", "reasons", "champion", "comparison")},
            indent=1,
        )
    )
