"""Benchmark results as rows (medians, spread, throughput, ratios) and markdown tables."""
from __future__ import annotations

from .timing import Timing


def to_rows(results: list[Timing], batch: int) -> list[dict]:
    """Rows with medians, spread, throughput and the ratio to the first subject of each group."""
    rows = []
    for r in results:
        first = next(o for o in results if o.mode == r.mode and o.dtype == r.dtype)
        fp32 = next((o for o in results if o.name == r.name and o.mode == r.mode
                     and o.dtype == 'fp32'), None)
        rows.append(dict(
            subject=r.name, mode=r.mode, dtype=r.dtype, median_s=round(r.median, 4),
            spread=round(r.spread, 3), images_per_s=round(batch / r.median, 3),
            speedup_of_first=round(r.median / first.median, 3),
            speedup_vs_fp32=round(fp32.median / r.median, 3) if fp32 else None,
            peak_mem_mb=None if r.peak_mem_mb is None else round(r.peak_mem_mb, 1),
            repeats=len(r.times_s)))
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table of formatted cells: the one writer of the benchmarks' tables."""
    return '\n'.join(['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header),
                      *('| ' + ' | '.join(cells) + ' |' for cells in rows)])


def markdown(rows: list[dict], first: str) -> str:
    """The rows as a table; GMACs and time over the floor where rows have them (``--floor``)."""
    floor = any('x_floor' in r for r in rows)
    header = ['subject', 'mode', 'dtype', 'median (s)', '±', 'img/s', f'{first} speed-up',
              'vs fp32', 'peak mem (MB)', *(['GMACs', 'x floor'] if floor else [])]
    cells = []
    for r in rows:
        mem = '-' if r['peak_mem_mb'] is None else f"{r['peak_mem_mb']:.0f}"
        vs32 = '-' if r['speedup_vs_fp32'] is None else f"{r['speedup_vs_fp32']:.2f}x"
        cells.append([r['subject'], r['mode'], r['dtype'], f"{r['median_s']:.3f}",
                      f"{100 * r['spread']:.0f}%", f"{r['images_per_s']:.2f}",
                      f"{r['speedup_of_first']:.2f}x", vs32, mem,
                      *([f"{r['macs_g']:.1f}", f"{r['x_floor']:.2f}"] if 'x_floor' in r
                        else ['-', '-'] if floor else [])])
    return markdown_table(header, cells)
