"""The ``sweep`` benchmark suite: ``python -m tutorial_lib.bench sweep [--repeats N]``.

Where int8 pays: the course CNN at 1x, 2x, 4x and 8x width (about 2.6 to 160 million
multiply-adds per image, ``tl.speed``), in PyTorch (float32 eager as written, with BatchNorm
folded, and compiled; int8 eager static and PT2E, lowered and compiled) and in LiteRT (float and
full integer), at batch 1, 8 and 32. The models of one width and framework are timed in the same
rounds. Writes a plot of the int8 speed-up against multiply-adds per image with the crossover
marked, and checks the course's speed targets on this CPU.
"""

from __future__ import annotations

from tutorial_lib.course import env
from tutorial_lib.measure import speed

TITLE = "Where int8 pays: the course CNN at four widths, PyTorch and LiteRT, one CPU thread"
THREADS = 1
COMPILE_WIDTHS = (1, 4)
LARGE_MACS = 30e6  # the targets speak of models of at least about 30 million multiply-adds

PAIRS = (  # (framework, float baseline, int8 variant) plotted and checked
    ("PyTorch", "fp32 eager, BN folded", "int8 static (eager)"),
    ("PyTorch", "fp32 compiled", "int8 PT2E (compiled)"),
    ("LiteRT", "float", "full_integer"),
)


def targets(rows: list[dict], has_vnni: bool) -> list[dict]:
    """The course's speed targets, each measured on the models of >= 30 million multiply-adds."""
    out = []
    checks = (("PyTorch", "fp32 eager, BN folded", "int8 static (eager)", 1, 2.0),
              ("PyTorch", "fp32 eager, BN folded", "int8 static (eager)", 32, 4.0),
              ("LiteRT", "float", "full_integer", 1, 2.0))
    for framework, base, variant, batch, goal in checks:
        picked = [r for r in rows if r["framework"] == framework]
        ratios = [s for m, s in speed.speedups(picked, base, variant, batch) if m >= LARGE_MACS]
        if not ratios:
            continue
        met = min(ratios) >= goal
        condition = "" if framework == "LiteRT" else " (on a CPU with AVX-512 VNNI)"
        verdict = "met" if met else "missed"
        if framework == "PyTorch" and not has_vnni:
            verdict += " (this CPU has no AVX-512 VNNI: the target does not apply)"
        out.append({"target": f"{framework} {variant} >= {goal:g}x over {base} at batch "
                              f"{batch}{condition}",
                    "measured (models >= 30 M MACs)": ", ".join(f"{r:.2f}x" for r in ratios),
                    "verdict": verdict})
    return out


def crossovers(rows: list[dict]) -> list[dict]:
    """The smallest model from which each int8 variant beats its float baseline, per batch."""
    out = []
    for framework, base, variant in PAIRS:
        picked = [r for r in rows if r["framework"] == framework]
        for batch in speed.BATCHES:
            pairs = speed.speedups(picked, base, variant, batch)
            if not pairs:
                continue
            macs, ratios = zip(*pairs, strict=True)
            found = speed.crossover(macs, ratios)
            out.append({"int8": f"{framework} {variant}", "over": base, "batch": batch,
                        "speed-ups (smallest to largest)": ", ".join(f"{r:.2f}" for r in ratios),
                        "int8 wins from": "never" if found is None
                        else f"{found / 1e6:.1f} M MACs"})
    return out


def figure(rows: list[dict]):
    """Speed-up of int8 over float against multiply-adds per image, one line per pair and batch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, axes = plt.subplots(1, len(PAIRS), figsize=(4.2 * len(PAIRS), 3.6), sharey=True)
    for ax, (framework, base, variant) in zip(axes, PAIRS, strict=True):
        picked = [r for r in rows if r["framework"] == framework]
        for batch in speed.BATCHES:
            pairs = speed.speedups(picked, base, variant, batch)
            if pairs:
                macs, ratios = zip(*pairs, strict=True)
                ax.plot([m / 1e6 for m in macs], ratios, "o-", label=f"batch {batch}")
                found = speed.crossover(macs, ratios)
                if found is not None:
                    ax.axvline(found / 1e6, color=ax.lines[-1].get_color(), ls=":", lw=1)
        ax.axhline(1.0, color="grey", lw=1)
        ax.set_xscale("log")
        ax.set_xlim(1.5, 300)
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("million multiply-adds per image")
        ax.set_title(f"{framework}: {variant}\nover {base}", fontsize=9)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("speed-up (above 1: int8 faster)")
    fig.suptitle(env.machine()["cpu"] + ", one thread; dotted: where int8 starts to win",
                 fontsize=9)
    fig.tight_layout()
    return fig


def run(repeats: int) -> tuple[list[dict], str, str, object]:
    """Sweep both frameworks, then tabulate, find the crossovers and check the targets."""
    raw = speed.torch_sweep(repeats=repeats, compile_widths=COMPILE_WIDTHS, threads=THREADS)
    raw += speed.litert_sweep(repeats=repeats, threads=THREADS)
    features = env.int8_features()
    table = []
    for framework, baseline in (("PyTorch", "fp32 eager, BN folded"), ("LiteRT", "float")):
        for row in speed.sweep_table([r for r in raw if r["framework"] == framework], baseline):
            table.append({"framework": framework, **row})
    keys = list(dict.fromkeys(k for row in table for k in row))
    table = [{k: row.get(k, "") for k in keys} for row in table]
    from tutorial_lib.measure.bench import markdown_table

    extra = (f"### Where int8 starts to win\n\n{markdown_table(crossovers(raw))}\n\n"
             f"### Targets on this CPU\n\n{markdown_table(targets(raw, features['AVX-512 VNNI']))}\n")
    have = ", ".join(name for name, ok in features.items() if ok) or "none of the listed"
    note = (f"This CPU's int8 instructions: {have}. Median and interquartile range of "
            f"{repeats} timed rounds after 3 warm-up rounds; in every round each model of one "
            f"width and framework runs at every batch size. 'xN': speed-up at batch N over "
            f"'fp32 eager, BN folded' (PyTorch) or 'float' (LiteRT) of the same width. Random "
            f"weights (speed does not depend on their values); calibration on 64 (PyTorch) or "
            f"32 (LiteRT) training images. Compiled rows (torch.compile, inductor with "
            f"freezing) at widths {', '.join(f'{w}x' for w in COMPILE_WIDTHS)} only, to keep the "
            f"run short.")
    return table, note, extra, figure(raw)
