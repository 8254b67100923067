# SPDX-License-Identifier: MIT
"""Plain-text tables and text histograms for the subcommands' human output."""


def table(headers, rows, align=None, indent=""):
    """A table as text: a header row, a rule, then ``rows``.

    ``align`` holds one character per column, ``<`` (left) or ``>`` (right); by default
    columns whose cells are all numbers are right-aligned. Cells are turned into text with
    ``str``. Every line is stripped of trailing blanks; the result ends with a newline.
    """
    rows = [[str(cell) for cell in row] for row in rows]
    headers = [str(h) for h in headers]
    if align is None:
        align = ["<"] * len(headers)
        for column in range(len(headers)):
            cells = [row[column] for row in rows]
            if cells and all(_numeric(cell) for cell in cells):
                align[column] = ">"
    widths = [len(h) for h in headers]
    for row in rows:
        for column, cell in enumerate(row):
            widths[column] = max(widths[column], len(cell))

    def line(cells):
        text = "  ".join(
            cell.rjust(width) if a == ">" else cell.ljust(width)
            for cell, width, a in zip(cells, widths, align)
        )
        return (indent + text).rstrip()

    out = [line(headers), (indent + "  ".join("-" * w for w in widths)).rstrip()]
    out.extend(line(row) for row in rows)
    return "\n".join(out) + "\n"


def key_values(pairs, indent=""):
    """``key: value`` lines with the values aligned."""
    pairs = [(str(k), str(v)) for k, v in pairs]
    if not pairs:
        return ""
    width = max(len(k) for k, _ in pairs) + 1
    return "".join(f"{indent}{(k + ':').ljust(width)} {v}".rstrip() + "\n" for k, v in pairs)


def histogram(buckets, label, width=40, indent=""):
    """A text histogram: one line per ``(upper_bound, count)``, bars scaled to ``width``.

    ``label`` turns an upper bound into the text of its row.
    """
    if not buckets:
        return ""
    top = max(count for _, count in buckets)
    labels = [label(bound) for bound, _ in buckets]
    label_width = max(len(text) for text in labels)
    count_width = max(len(str(count)) for _, count in buckets)
    out = []
    for text, (_, count) in zip(labels, buckets):
        bar = "#" * max(1, round(count * width / top)) if count else ""
        out.append(f"{indent}<= {text.rjust(label_width)}  {str(count).rjust(count_width)}  {bar}")
    return "\n".join(line.rstrip() for line in out) + "\n"


def _numeric(text):
    text = text.strip()
    if not text or text == "-":
        return True
    if text.startswith(("+", "-")):
        text = text[1:]
    return text.replace(".", "", 1).replace(",", "").isdigit()
