"""``napari-samed segment``: prompts (or a trained model alone) -> a label volume."""

from __future__ import annotations

import sys
from pathlib import Path

from ..errors import SamedError
from . import options


def add_parser(sub) -> None:
    from ..methods import METHOD_NAMES

    p = sub.add_parser("segment", help="segment a volume from prompts; write a label volume")
    p.add_argument("image", type=options.path, metavar="IMAGE",
                   help="NIfTI (.nii, .nii.gz) or TIFF volume, or a DICOM series (its folder, or one of its files)")
    p.add_argument("-o", "--output", type=options.path, required=True, metavar="OUT",
                   help="label volume to write, in IMAGE's format and geometry (NIfTI for a DICOM series, or a "
                        "DICOM SEG of it: OUT.dcm)")
    p.add_argument("--method", choices=METHOD_NAMES,
                   help="segmentation method (default zero-shot, or the --trained model's)")
    p.add_argument("--trained", type=options.path, metavar="CKPT",
                   help="a trained model (napari-samed train ...): few-shot, co-trained decoder or ProMISe; it runs "
                        "on the backbone and window it was trained with")
    options.add_model(p)
    p.add_argument("--box", action="append", default=[], type=options.prompt("box"), metavar="Z,Y0,X0,Y1,X1[,LABEL]",
                   help="2D box on slice Z; repeat for more objects. Boxes with the same LABEL are one object; "
                        "without LABEL each box is an object of its own (the lowest free labels, in order)")
    p.add_argument("--box3d", action="append", default=[], type=options.prompt("box3d"),
                   metavar="Z0,Y0,X0,Z1,Y1,X1", help="3D box, propagated from its middle slice")
    p.add_argument("--point", action="append", default=[], type=options.prompt("point"),
                   metavar="Z,Y,X[,POLARITY[,LABEL]]",
                   help="click on slice Z; POLARITY 1 positive (default) or 0 negative; with LABEL it belongs "
                        "to that object, without it to the box around it on its slice")
    p.add_argument("--propagate", action="store_true",
                   help="segment each object through the volume, stopping where the object ends (zero-shot); "
                        "its prompts on several slices are steps in the order given (boxes, then points): later "
                        "clicks correct it, a positive one only adding, a negative one only removing")
    options.add_overwrite(p)
    p.set_defaults(run=run)


def trained_file(args) -> Path | None:
    """--trained, or the old spelling: --checkpoint with a trained --method (a deprecation warning)."""
    from ..methods import get_method

    if args.trained is None and args.checkpoint is not None and args.method and get_method(args.method).trained:
        options.warn("--checkpoint for a trained model is deprecated; use --trained CKPT (--checkpoint names "
                     "backbone weights)")
        args.trained, args.checkpoint = args.checkpoint, None
    return args.trained


def method_class(args):
    """The method of --method and --trained, checked to agree."""
    from ..methods import get_method, trained_class

    if args.trained is None:
        cls = get_method(args.method or "zero-shot")
        if cls.trained:
            raise SamedError(f"method {cls.name} needs its trained model: --trained CKPT")
        return cls
    cls = trained_class(args.trained)
    if args.method not in (None, cls.name):
        raise SamedError(f"{args.trained} is a {cls.what} model (method {cls.name}), not a {args.method} one")
    return cls


def labels_output(args, out: Path, inputs) -> Path:
    """OUT for a label volume, checked before any work: see `io.outputs.check_output_file`."""
    from ..io.outputs import check_output_file
    from ..io.readers import LABELS_MARK, written_by

    return check_output_file(out, inputs, lambda p: written_by(p) == LABELS_MARK, "label volume", args.overwrite)


def output_path(out: Path, image: Path) -> Path:
    from ..io.readers import volume_format

    if out.is_dir():
        raise SamedError(f"OUT {out} is a folder; give the label volume a file name")
    source = volume_format(image)
    try:
        fmt = volume_format(out)
    except SamedError:
        return out.with_name(out.name + (".tif" if source == "tiff" else ".nii.gz"))
    if fmt in ("dicom", "seg") and source != "dicom":
        raise SamedError(f"OUT {out}: a DICOM SEG needs a DICOM series as IMAGE, and {image} is "
                         f"{'a DICOM SEG' if source == 'seg' else source.upper()}; give a "
                         f"{'.tif' if source == 'tiff' else '.nii.gz'} name")
    # labels of a DICOM series: NIfTI keeps its geometry, TIFF its spacing, a DICOM SEG references its files
    if fmt != source and source != "dicom":
        raise SamedError(f"OUT {out} must have the format of IMAGE {image} ({source.upper()})")
    return out


def run(args) -> int:
    from ..io import read_volume, write_labels
    from ..methods.prompted import made_by, method_prompts, segment_volume, volume_embeddings
    from ..methods.trained import checkpoint_entry
    from ..tasks import run_task

    trained = trained_file(args)
    method_cls = method_class(args)
    out = labels_output(args, output_path(args.output, args.image), [args.image, trained, args.checkpoint])
    volume = read_volume(args.image)
    # before any model load or progress bar
    prompts = method_prompts(method_cls, args.box, args.box3d, args.point, args.propagate, volume.shape)
    if prompts and not method_cls.prompts:
        raise SamedError(f"{method_cls.what} segments every slice without prompts; drop --box, --box3d and --point")
    if trained is not None:
        recorded = checkpoint_entry(trained, "backbone")
        if args.model not in (None, recorded):
            raise SamedError(f"{trained} runs on the backbone it was trained on, {recorded}, not --model "
                             f"{args.model}; drop --model")
        args.model = recorded
        backbone = options.backbone(args) if args.checkpoint else None
        method = method_cls.open(trained, args.device, args.precision, backbone)
    else:
        method = method_cls(options.backbone(args))
    embeddings = volume_embeddings(method, volume, args.cache, args.window)
    bar, update = options.progress_bar("segment")
    with bar:
        labels, objects = run_task(segment_volume(method, embeddings, prompts), update)
    for obj in objects:
        print(obj.describe(), file=sys.stderr)
    write_labels(labels, out, volume, made_by(method))
    print(out)
    return 0
