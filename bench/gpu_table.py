"""Markdown table of bench/gpu.sh's results.jsonl: patchcert vs PyTorch on the same GPU, as ratios.

  python3 bench/gpu_table.py OUT/results.jsonl
"""
import json
import sys


def f(v: float) -> str:
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def main(path: str) -> None:
    rows = [json.loads(l) for l in open(path) if l.strip()]
    print("| model | measurement | ablations/s | vs authors' fp32 loop | vs best PyTorch |")
    print("|---|---|---|---|---|")
    for m in ("r18", "r50"):
        torch = {r["run"]["mode"]: r["run"]["ablationsPerSecond"] for r in rows if r["what"] == "pytorch" and r["model"] == m}
        a, b = torch.get("authors"), torch.get("best")
        ratio = lambda v, ref: f"{v / ref:.2f}x" if ref else "–"  # noqa: E731
        for r in rows:
            if r.get("model") != m:
                continue
            if r["what"] == "raw":
                print(f"| {m} | patchcert {r['backend']} raw forward, batch {r['batch']} | {f(r['passesPerSecond'])} | {ratio(r['passesPerSecond'], a)} | {ratio(r['passesPerSecond'], b)} |")
            elif r["what"] == "certify":
                v = r["run"]["ablationsPerSecond"]
                print(f"| {m} | patchcert certify, {r['workers']} worker process{'es' if r['workers'] > 1 else ''}, {r['run']['images']} images (wall {r['run']['wallSeconds']} s) | {f(v)} | {ratio(v, a)} | {ratio(v, b)} |")
            elif r["what"] == "pytorch":
                run = r["run"]
                label = "authors' loop, fp32" if run["mode"] == "authors" else f"best: bf16, channels_last{', torch.compile' if run['compile'] else ''}"
                print(f"| {m} | PyTorch {label}, {run['images']} images | {f(run['ablationsPerSecond'])} | {ratio(run['ablationsPerSecond'], a)} | {ratio(run['ablationsPerSecond'], b)} |")
        for r in rows:
            if r["what"] == "counts-vs-cpu" and r["model"] == m:
                print(f"| {m} | counts vs CPU provider, {r['images']} images | {r['differing']} differ | | |")
    dev = next((r["run"].get("device") for r in rows if r["what"] == "pytorch"), None)
    gdev = next((r["run"].get("device") for r in rows if r["what"] == "certify"), None)
    print(f"\nPyTorch device: {dev}; patchcert device: {gdev}")


if __name__ == "__main__":
    main(sys.argv[1])
