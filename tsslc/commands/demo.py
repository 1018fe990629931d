"""``tsslc demo``: the main job (:func:`tsslc.pipeline.demo`): train on the embedded digits
set, export, compile for loihi2 and truenorth, run on the float interpreter, intsim and
Lava, verify layer by layer, fine-tune for each target, report."""

from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("-o", "--out", default="runs/demo", help="run folder to write (default runs/demo)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the config's)")
    parser.add_argument("--lava-samples", type=int, default=150, help="test samples run on Lava (default 150)")
    parser.add_argument("--calibration", type=int, default=256,
                        help="training samples to calibrate on, drawn evenly from every class (default 256)")
    parser.add_argument("--finetune-epochs", type=int, default=2,
                        help="epochs of hardware-aware fine-tuning per target (default 2; 0 skips the stage)")
    parser.add_argument("--mnist-dir", default="../shared/data/mnist",
                        help="MNIST IDX folder for the MNIST CNN's firing activity (default: ../shared/data/mnist; "
                             "skipped with a note when it is missing)")
    parser.add_argument("--mnist-train-samples", type=int, default=12000,
                        help="MNIST images the CNN is trained on for the activity figures (default 12000; 0 skips)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args) -> int:
    from tsslc.pipeline import demo

    demo(args.out, args.epochs, args.lava_samples, args.calibration, args.finetune_epochs, args.mnist_dir,
         args.mnist_train_samples, progress=not args.no_progress)
    return 0
