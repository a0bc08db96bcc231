"""`rosetta data render`: scenes of the embedded world as PNG files with their ground-truth masks."""

from __future__ import annotations

import argparse

#: the worlds a folder can be rendered from: the encoders' training world and mini-gen's simpler one
WORLDS = ("default", "simple")


def data_render(args: argparse.Namespace) -> int:
    from rosetta_core.data import WorldConfig
    from rosetta_core.data.scene_files import write_scenes

    if args.world not in WORLDS:
        raise ValueError(f"--world {args.world!r} is invalid; valid: {', '.join(WORLDS)}")
    config = WorldConfig.simple() if args.world == "simple" else WorldConfig()
    index = write_scenes(args.out, args.n, seed=args.seed, style=args.style, config=config)
    last = index["scenes"][-1]
    print(f"wrote {index['n']} {args.style} scenes of the {args.world} world (seed {args.seed}) to {args.out}: "
          f"{index['scenes'][0]['image']} .. {last['image']}, each with its .masks.npz, and index.json")
    return 0


def add_data_commands(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="data to try the tools offline: scenes with ground truth")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    render = data_sub.add_parser(
        "render", help="write scenes of the embedded world as PNG files with their ground-truth masks",
        description="Writes scene_00000.png .. and beside each scene_NNNNN.masks.npz (boolean masks per shape "
        "kind and colour, per object, background, contours, shadow) and index.json (settings, factor names, "
        "objects per scene). Scene i is the world's scene (seed, i): the same files for the same seed, "
        "style and world.",
    )
    render.add_argument("--n", type=int, required=True, help="number of scenes (>= 1)")
    render.add_argument("--out", required=True, help="folder to write (created if missing)")
    render.add_argument("--style", default="photo", help="photo (default), sketch or cartoon: the same scenes drawn differently")
    render.add_argument("--seed", type=int, default=0, help="world seed: scene i is scene (seed, i) (default 0)")
    render.add_argument("--world", default="default", help="default (the encoders' training world, default) or "
                        "simple (mini-gen's world: 1-2 large upright objects)")
    render.set_defaults(run=data_render)
