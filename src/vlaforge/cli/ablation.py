"""``vlaforge ablation``: the preset's policy against the same architecture without pretraining, and with
swapped instructions, with the expert and random baselines in one STEP report (:mod:`vlaforge.ablation`)."""

from __future__ import annotations


def _ablation(args) -> int:
    from vlaforge.ablation import results_markdown, run_ablation, write_results_doc

    record = run_ablation(args.preset, args.overrides, args.out, args.repeats, args.vlm, args.robotics)
    if args.results_doc:
        write_results_doc(args.out, args.results_doc)
    print(results_markdown(record))
    return 0


def register(sub) -> None:
    p = sub.add_parser("ablation", help="train the preset's policy and a random-init one with the same budget; "
                                        "evaluate them, swapped instructions and baselines; one STEP report")
    p.add_argument("--out", required=True, help="output folder (resumable): upstream/, policies/, rollouts/, "
                                                "analysis/, ablation.json, report.html, tables.md")
    p.add_argument("--preset", default="metaworld4", help="preset name or YAML file (default: metaworld4)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a preset entry, e.g. --set vla.train.max_minutes=5 (repeatable)")
    p.add_argument("--repeats", type=int, default=1, help="training seeds per variant; repeat r evaluates the "
                                                          "r-th block of sim_eval.episodes-sized scenes (default 1)")
    p.add_argument("--vlm", default="", help="an existing vlm_pretrain output (with --robotics: skip the upstream "
                                             "stages)")
    p.add_argument("--robotics", default="", help="existing preprocess_robotics shards")
    p.add_argument("--results-doc", default="", help="also write the tables, captions and plots here, e.g. "
                                                     "docs/results/metaworld4-ablation")
    p.set_defaults(func=_ablation)
