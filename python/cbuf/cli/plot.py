"""cbuf plot: a live matplotlib plot of numeric columns, one subplot per unit; --save writes one PNG."""
import sys

import numpy as np

from .._dtype import time_column
from ..errors import require
from .errors import CliError
from .args import POSITIVE_SECONDS, add_wait
from .find import open_buffer
from . import stopping
from .present import choose_columns


def add(sub) -> None:
    s = sub.add_parser("plot", help="live plot of numeric columns (matplotlib)")
    s.add_argument("buffer")
    s.add_argument("--columns", help="comma-separated columns (default: every numeric column)")
    s.add_argument("--window", type=POSITIVE_SECONDS, default=10.0,
                   help="seconds shown (by the first timestamp column)")
    s.add_argument("--save", metavar="PNG", help="write one snapshot and exit (headless)")
    add_wait(s)
    s.set_defaults(func=run)


def run(args) -> int:
    matplotlib = require("matplotlib", "plot", "cbuf plot")
    if args.save:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    r = open_buffer(args.buffer, "plot" if not args.save else "", args.wait, live=args.live)
    types = {c.name: c.type for c in r.columns}
    numeric = [c for c in r.dtype.names if not types[c].startswith("string[") and types[c] != "timestamp_ns"]
    cols = choose_columns(r, args.columns) if args.columns else numeric
    for c in cols:
        if c not in numeric:
            raise CliError(f"column {c!r} is not numeric; plot one of {', '.join(numeric)}")
    ts_col = time_column(r.columns)
    # One subplot per unit (columns of one unit share an axis), and one per column without a unit: a
    # quaternion and a counter never squash each other. The unit labels the y axis.
    units = {c["name"]: c.get("unit", "") for c in r.schema["columns"]}
    groups = {}
    for c in cols:
        groups.setdefault(units.get(c) or f"column {c}", []).append(c)
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 2.2 + 1.8 * len(groups)), dpi=100, sharex=True,
                             squeeze=False)
    axes = [a[0] for a in axes]
    palette = plt.get_cmap("tab20").colors  # 20 distinct colours, then line styles tell lines apart
    styles = ("-", "--", ":", "-.")

    def draw():
        if r.follow and r.state != "live":  # the producer is gone: move to its successor, if there is one
            r.seek(r.head)
            if r.read_new(max=1).restart and any(c not in r.dtype.names for c in cols):
                raise CliError(f"{r.path}: the restarted producer's schema has other columns: "
                               f"{', '.join(r.dtype.names)}")
        res = r.last_indexed(r.capacity)
        rows = res.rows
        x, label = None, "row index"
        if len(rows):
            if ts_col:
                t = (rows[ts_col].astype(np.int64) - int(rows[ts_col][-1])) / 1e9
                keep = t >= -args.window
                rows, x, label = rows[keep], t[keep], "seconds (0 = newest row)"
            else:
                x = np.arange(res.first, res.first + len(rows))
        for ax, (unit, members) in zip(axes, groups.items()):
            ax.clear()
            n = 0
            for c in members:
                y = rows[c] if x is not None else None
                series = [(c, None)] if y is None or y.ndim == 1 else [(f"{c}[{j}]", j) for j in range(y.shape[1])]
                for name, j in series:
                    if y is not None:
                        ax.plot(x, y if j is None else y[:, j], label=name, color=palette[n % 20],
                                linestyle=styles[(n // 20) % 4], linewidth=1)
                    n += 1
            ax.set_ylabel(unit if not unit.startswith("column ") else members[0])
            ax.grid(True, alpha=0.3)
            if x is not None:
                ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False,
                          ncol=1 + n // 12)
        axes[-1].set_xlabel(label)
        axes[0].set_title(f"{r.path} ({r.state})")
        fig.tight_layout()

    if args.save:
        draw()
        fig.savefig(args.save)
        print(f"saved {args.save}", file=sys.stderr)
        return 0
    from matplotlib.animation import FuncAnimation
    stop = stopping.install()

    def frame(_):  # SIGTERM or Ctrl-C closes the window within a frame (stopping.py)
        if stop.is_set():
            plt.close(fig)
        else:
            draw()
    # The figure keeps the animation referenced (an unreferenced one stops) while the window is open.
    fig.cbuf_animation = FuncAnimation(fig, frame, interval=200, cache_frame_data=False)
    plt.show()
    return 0
