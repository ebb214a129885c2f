"""The ``minivq`` command's parser, and :func:`main`, which runs a subcommand and turns every error a user can
cause into one line on stderr, ``minivq <command>: error: ...``, and an exit code: 2 for a wrong command
line, 1 for a failure while running, 130 for Ctrl-C. ``--debug`` (or ``MINIVQ_DEBUG=1``) shows the traceback.
"""
import argparse
import os
import sys
import textwrap

from .. import about
from ..env import EnvError, env_flag
from .checks import UsageError, finite_float, json_object, non_negative_int, positive_float, positive_int
from .commands import demo_cmd, evaluate_cmd, train_cmd
from ..course.cli import add_parser as _add_course
from ..model import VARIANTS
from ..study import add_parser as _add_study
from .demo import DEMO, QUICK, Interrupted, load_split

__all__ = ["main", "build_parser", "load_split", "DEMO", "QUICK"]

MODALITY_HELP = ("image and speech: the spoken-digit scenes (handwritten digits and a synthesized caption naming "
                 "them; what the image holds is set by --world); text: the caption's digits as tokens; a and b: "
                 "two synthetic toy modalities of 8 shared concepts (minivq.data.toy_pairs), which go together "
                 "and train in seconds")
VARIANT_HELP = "summary: continuous summary only (SUM-1); vq: + shared VQ codebook; full: + CMCM (the method)"

DEMO_EPILOG = """examples:
  minivq demo                          # the README's table: 3 variants, 40 epochs, ~30 s on 2 cores
  minivq demo --quick --out /tmp/q     # a few seconds, every code path
  minivq demo --seeds 0 1 2 --out results_3seeds
  minivq demo --variants vq full --eval-split val   # tune on validation, test untouched"""
TRAIN_EPILOG = """examples:
  minivq train --epochs 10 --checkpoint run.npz
  minivq train --resume --epochs 20 --checkpoint run.npz   # continue on the same data
  minivq train --overwrite --epochs 10 --checkpoint run.npz  # start run.npz over
  minivq train --quick --modalities a b --checkpoint toy.npz
  minivq train --model '{"K": 64, "tau_code": 0.2}' --checkpoint k64.npz"""
EVALUATE_EPILOG = """examples:
  minivq evaluate run.npz
  minivq evaluate run.npz --split val --n 200 --json val.json"""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that takes no abbreviated options (`--seed 3` is not `--seeds 3`), nor do its
    subcommands' parsers (:class:`_SubParser`)."""

    def __init__(self, *args, allow_abbrev=False, **kwargs):
        super().__init__(*args, allow_abbrev=allow_abbrev, **kwargs)

    def add_subparsers(self, **kwargs):
        return super().add_subparsers(**{"parser_class": _SubParser, **kwargs})


class _SubParser(_Parser):
    """The parser of a subcommand: reports the arguments it does not know itself, under its own usage."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (unless it is None or False, or the help states it)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or action.default in (None, False, argparse.SUPPRESS, [], ())
                or not action.option_strings):
            return text
        default = action.default
        if isinstance(default, (list, tuple)):
            default = " ".join(map(str, default))
        return f"{text} (default: {default})"


def _subparser(sub, name, help, description, epilog, debug):
    return sub.add_parser(name, help=help, description=textwrap.fill(description, 79), epilog=epilog,
                          formatter_class=_Formatter, parents=[debug])


WORLDS = ("hard_on_grid", "hard", "easy")
WORLD_HELP = ("hard_on_grid: 2 to 5 named digits and 1 or 2 unnamed distractors on the patch grid, digit "
              "sets never named in training, voices balanced (the study's world); hard: the same, digits "
              "off the patch grid; easy: v0.1's 2 or 3 named digits, nothing else")


def _add_demo(sub, debug):
    p = _subparser(sub, "demo", "train the 3 variants, score them on test, write the report",
                   "Train the variants of the paper's ablation on the spoken-digit scenes (2000 train pairs), "
                   "score each on 500 held-out test pairs, print each row as soon as it is scored, and write "
                   "metrics.json, report.md and the figures to --out.", DEMO_EPILOG, debug)
    p.add_argument("--out", default="results", help="output folder (created if needed); its earlier results are "
                   "replaced only when the new ones are finished")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results of a demo of other settings in --out (without it, that is an error)")
    p.add_argument("--quick", action="store_true", help="a tiny run of a few seconds (192 train pairs, 2 epochs)")
    p.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0],
                   help="training seeds; with several, the table shows mean ± std")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help=f"epochs per run (default: {DEMO['train']['epochs']}, "
                   f"or {QUICK['train']['epochs']} with --quick)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS, help=VARIANT_HELP)
    p.add_argument("--eval-split", default="test", choices=["test", "val"],
                   help="split to score (val: for tuning settings without looking at test)")
    p.add_argument("--world", default=None, choices=WORLDS,
                   help=f"the scenes (default: {DEMO['data']['world']}). {WORLD_HELP}")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help="runs trained at once, in worker processes (default: one per core, at most one per "
                   "run); the numbers do not depend on it")
    p.set_defaults(func=demo_cmd)


def _add_train(sub, debug):
    p = _subparser(sub, "train", "train one variant, with a checkpoint after every epoch",
                   "Train one variant on one pair of modalities, writing the checkpoint (atomically) after every "
                   "epoch. The checkpoint records the data it was trained on; --resume continues on that data, "
                   "and a flag that contradicts the checkpoint is an error.", TRAIN_EPILOG, debug)
    p.add_argument("--modalities", nargs=2, default=None, choices=["image", "speech", "text", "a", "b"],
                   metavar="M", help=f"two modalities (default: image speech). {MODALITY_HELP}")
    p.add_argument("--variant", default=None, choices=VARIANTS, help=f"{VARIANT_HELP} (default: full)")
    p.add_argument("--epochs", type=positive_int, default=None,
                   help=f"train up to this epoch (default: {DEMO['train']['epochs']}, {QUICK['train']['epochs']} "
                   "with --quick; with --resume, the checkpoint's, and it must exceed the checkpoint's epoch)")
    p.add_argument("--world", default=None, choices=WORLDS,
                   help=f"the scenes of image/speech/text (default: {DEMO['data']['world']}). {WORLD_HELP}")
    p.add_argument("--n-train", type=positive_int, default=None,
                   help=f"training pairs (default: {DEMO['data']['n_train']}, {QUICK['data']['n_train']} with --quick)")
    p.add_argument("--seed", type=non_negative_int, default=None, help="training seed (default: 0)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help=f"Adam learning rate (default: {DEMO['train']['lr']:g})")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help=f"pairs per step (default: {DEMO['train']['batch_size']}, "
                   f"{QUICK['train']['batch_size']} with --quick)")
    p.add_argument("--model", type=json_object, default=None,
                   help='ModelConfig fields as a JSON object, e.g. \'{"K": 64}\' (default: none; '
                   "--quick sets D, K, hidden, embed_dim smaller)")
    p.add_argument("--checkpoint", default="minivq_checkpoint.npz", help="checkpoint file (.npz)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true",
                       help="continue from --checkpoint, on its data, up to --epochs")
    start.add_argument("--overwrite", action="store_true",
                       help="start a new run even if --checkpoint exists (without it, an existing checkpoint is "
                       "an error; the old file is replaced when epoch 1 is saved)")
    p.add_argument("--quick", action="store_true", help="a tiny model and data set, for tests")
    p.set_defaults(func=train_cmd)


def _add_evaluate(sub, debug):
    p = _subparser(sub, "evaluate", "score a checkpoint on a split",
                   "Score a checkpoint on n pairs of a split: retrieval (RET), and with codes localization (LOC) "
                   "and code-concept agreement (CC). Prints the table row; --json also writes the numbers.",
                   EVALUATE_EPILOG, debug)
    p.add_argument("checkpoint", help="a checkpoint written by minivq train")
    p.add_argument("--split", default="test", choices=["train", "val", "test"], help="split to score")
    p.add_argument("--n", type=positive_int, default=500, help="pairs to score (memory grows as n^2)")
    p.add_argument("--lambda-r", type=finite_float, default=1.0, help="weight of S^code in the combined ranking")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file (a new file, or one "
                   "minivq evaluate wrote)")
    p.add_argument("--overwrite", action="store_true", help="let --json replace a file minivq evaluate did not write")
    p.set_defaults(func=evaluate_cmd)


def build_parser():
    """The argparse parser of the subcommands."""
    debug = _Parser(add_help=False)
    debug.add_argument("--debug", action="store_true", help="show the traceback of an error (or MINIVQ_DEBUG=1)")
    parser = _Parser(
        prog="minivq", formatter_class=_Formatter,
        description="Cross-modal discrete representation learning (Liu et al., ACL 2022) in miniature.",
        epilog="run `minivq <command> --help` for each command's options and examples")
    parser.add_argument("--version", action="version", version=about())
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    _add_demo(sub, debug)
    _add_train(sub, debug)
    _add_evaluate(sub, debug)
    _add_study(sub, parents=[debug], formatter_class=_Formatter)
    _add_course(sub, parents=[debug], formatter_class=_Formatter)
    return parser


def _fail(command, message, code):
    print(f"minivq {command}: error: {message}", file=sys.stderr, flush=True)
    return code


def main(argv=None):
    """Entry point of the ``minivq`` console script and of ``python -m minivq``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        debug = env_flag("MINIVQ_DEBUG")
    except EnvError as e:
        return _fail(args.command, e, 2)
    if args.debug or debug:
        args.func(args)
        return 0
    try:
        args.func(args)
    except UsageError as e:
        return _fail(args.command, e, 2)
    except Interrupted as e:  # the demo: says what it kept
        return _fail(args.command, e, 130)
    except KeyboardInterrupt as e:
        return _fail(args.command, "interrupted" + (f"; {e}" if str(e) else ""), 130)
    except BrokenPipeError:  # stdout closed early (e.g. `minivq demo | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except NotImplementedError as e:  # a student copy of the course kit, before an exercise is written
        return _fail(args.command, f"{e} (a course exercise not written yet: `minivq course grade` shows which)", 1)
    except MemoryError:
        return _fail(args.command, "out of memory; try smaller sizes (--n, --n-train)", 1)
    except (ValueError, TypeError, OSError, ArithmeticError) as e:
        return _fail(args.command, str(e).splitlines()[0] if str(e) else type(e).__name__, 1)
    except Exception as e:  # a bug: say so, in one line, and how to see more
        first = str(e).splitlines()[0] if str(e) else ""
        return _fail(args.command, f"internal error {type(e).__name__}: {first} (rerun with --debug for the traceback)", 1)
    return 0
