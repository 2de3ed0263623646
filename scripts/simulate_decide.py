"""The operating characteristics of ``python -m mnist_pairs.decide``'s design, by simulation (no
training): the false-decision rate under the null with the design and with a naive "stop at the first
p < alpha", the power at the margin, and the mean seeds used against a fixed design of the same power.

    python scripts/simulate_decide.py [--sd 1.5] [--margin 1.0] [--step 5] [--max-seeds 40] [--sequences 20000]

The SD is that of the paired differences in points (1.5 is typical of the benchmark's 50-epoch cells)."""

from __future__ import annotations

import argparse
import math

from statsmodels.stats.power import TTestPower

from mnist_pairs.analysis.sequential import Plan, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sd", type=float, default=1.5)
    parser.add_argument("--margin", type=float, default=1.0)
    parser.add_argument("--step", type=int, default=5)
    parser.add_argument("--max-seeds", type=int, default=40)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--sequences", type=int, default=20_000)
    parser.add_argument("--spending", default="obrien_fleming")
    args = parser.parse_args()
    plan = Plan(args.alpha, args.margin, args.step, args.max_seeds, spending=args.spending)
    se = math.sqrt(args.alpha * (1 - args.alpha) / args.sequences)
    print(f"looks at {plan.looks()} seeds, alpha {args.alpha}, margin ±{args.margin} pts, SD of differences {args.sd}")
    print(f"Monte Carlo SE of a {args.alpha:.0%} rate: {se:.4f} ({args.sequences} sequences)")
    print(f"{'true effect':>12} {'procedure':>10} {'higher':>7} {'lower':>7} {'equiv.':>7} {'undec.':>7} {'seeds':>6}")
    for effect in (0.0, args.margin / 2, args.margin, 2 * args.margin):
        for naive in (False, True):
            if naive and effect not in (0.0, args.margin):
                continue
            r = simulate(plan, effect, args.sd, args.sequences, seed=1, naive=naive)
            name = "naive" if naive else "design"
            print(
                f"{effect:>12.2f} {name:>10} {r['higher']:>7.3f} {r['lower']:>7.3f} {r['equivalent']:>7.3f} "
                f"{r['undecided']:>7.3f} {r['mean_seeds']:>6.1f}"
            )
    r = simulate(plan, args.margin, args.sd, args.sequences, seed=2)
    power = r["higher"]
    fixed_n = TTestPower().solve_power(effect_size=args.margin / args.sd, alpha=args.alpha, power=power)
    print(
        f"at a true effect of {args.margin} pts the design decides 'higher' {power:.1%} of the time with "
        f"{r['mean_seeds']:.1f} seeds on average; a fixed design needs {math.ceil(fixed_n)} seeds for that power"
    )


if __name__ == "__main__":
    main()
