"""``--html FILE.html``: one self-contained page (summary, sortable table of every op, the
utilisation, roofline, energy and timeline plots as embedded PNGs) that fetches nothing."""

from __future__ import annotations

import base64
from html.parser import HTMLParser

import pytest

from conftest import CONFIGS
from simulator import load_chip
from simulator.core.engine import run
from simulator.kernels.zoo import build_zoo
from simulator.tools.cli import main
from simulator.tools.html_report import OP_COLUMNS, html_page

MXU = str(CONFIGS / "tpu-v4-mxu.yaml")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """Collects the tags, attributes, table rows and text of a page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.rows: list[list[str]] = []
        self.header: list[str] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None
        self._in_body = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False
        elif tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell)
            (self.rows[-1] if tag == "td" else self.header).append(text)
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def bert_page():
    rep = run(load_chip(MXU), build_zoo("zoo:bert-base").program)
    page = Page()
    page.feed(html_page(rep, "zoo:bert-base"))
    page.close()
    return rep, page


def test_page_holds_every_op_row(bert_page):
    rep, page = bert_page
    assert page.header == [h for h, _k, _t in OP_COLUMNS]
    assert len(page.rows) == len(rep.ops)
    assert [r[0] for r in page.rows] == [op.name for op in rep.ops]
    cycles = page.header.index("cycles")
    assert [int(r[cycles].replace(",", "")) for r in page.rows] == \
        [op.total_cycles for op in rep.ops]


def test_page_embeds_four_png_plots(bert_page):
    _rep, page = bert_page
    imgs = [a for t, a in page.tags if t == "img"]
    assert len(imgs) == 4
    for a in imgs:
        assert a["src"].startswith("data:image/png;base64,")
        assert base64.b64decode(a["src"].split(",", 1)[1])[:8] == PNG_MAGIC
        assert a["alt"]


def test_page_references_no_external_url(bert_page):
    _rep, page = bert_page
    for tag, attrs in page.tags:
        for key in ("src", "href", "data", "action", "poster"):
            if key in attrs:
                assert attrs[key].startswith(("data:", "#")), (tag, key, attrs[key][:80])
        assert tag not in ("link", "iframe", "object", "embed"), tag
        if tag == "script":
            assert "src" not in attrs
    body = "".join(page.text)
    assert "http://" not in body and "https://" not in body and "@import" not in body


def test_page_has_the_summary_and_a_sort_script(bert_page):
    rep, page = bert_page
    body = "".join(page.text)
    assert f"{rep.total_cycles:,} total" in body
    assert any(t == "script" for t, _a in page.tags) and "localeCompare" in body


def test_cli_writes_html_and_refuses_a_bad_path(tmp_path, capsys):
    path = tmp_path / "r.html"
    assert main(["run", MXU, "--model", "zoo:tiny-transformer", "--html", str(path)]) == 0
    page = Page()
    page.feed(path.read_text())
    assert len(page.rows) == len(build_zoo("zoo:tiny-transformer").program.ops)
    capsys.readouterr()
    assert main(["run", MXU, "--gemm", "8x8x8", "--html", str(tmp_path / "no" / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("--html ") and "\n" not in err


EXPLORE = """\
space:
  array.rows: [8, 16, 32, 64]
  array.cols: [8, 16, 32, 64]
  array.dataflow: [os, ws]
  buffers.unified_buffer.bytes: [1048576, 4194304]
workloads:
  - gemm: 256x256x256
  - gemm: 64x512x128
    weight: 2
objectives: {latency_s: min, power_w: min, area_mm2: min}
constraints: [area_mm2 <= 12]
"""


def test_explore_html_has_the_plot_front_and_importance(tmp_path, capsys):
    from simulator.tools import explore as ex
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(f"base: {CONFIGS / 'edge-tpu.yaml'}\n" + EXPLORE)
    path, out = tmp_path / "e.html", tmp_path / "r.jsonl"
    assert main(["explore", str(spec_path), "--out", str(out), "--algorithm", "grid",
                 "--executor", "serial", "--html", str(path)]) == 0
    assert f"html: {path}" in capsys.readouterr().out
    res = ex.run_explore(ex.load_explore(spec_path), out, "grid")  # read back, nothing new
    assert res.evaluated_now == 0 and len(res.front) >= 2
    page = Page()
    page.feed(path.read_text())
    page.close()
    imgs = [a for t, a in page.tags if t == "img"]
    assert len(imgs) == 1 and base64.b64decode(imgs[0]["src"].split(",", 1)[1])[:8] == PNG_MAGIC
    for tag, attrs in page.tags:  # self-contained
        assert all(attrs[k].startswith("data:") for k in ("src", "href") if k in attrs)
        assert not (tag == "script" and "src" in attrs)
    header = page.header[:page.header.index("objective")]
    assert header[:5] == ["chip", "array.rows", "array.cols", "array.dataflow",
                          "buffers.unified_buffer.bytes"]
    assert header[5:8] == ["latency_s", "power_w", "area_mm2"]
    front_rows, imp_rows = page.rows[:len(res.front)], page.rows[len(res.front):]
    assert len(front_rows) == len(res.front)
    for cells, row in zip(front_rows, res.front):
        got = dict(zip(header, cells))
        assert int(got["array.rows"]) == row["array.rows"] and got["array.dataflow"] == \
            row["array.dataflow"]
        assert float(got["area_mm2"]) == pytest.approx(row["area_mm2"], rel=1e-3)
        assert row["area_mm2"] <= 12
    assert [r[0] for r in imp_rows] == list(res.importance) == ["latency_s", "power_w",
                                                                  "area_mm2"]
    for r in imp_rows:
        assert sum(float(x) for x in r[1:]) == pytest.approx(1.0, abs=0.01)
    body = "".join(page.text)
    assert f"{len(res.points)} chips" in body and "area_mm2 <= 12" in body
    assert "(weight 2)" in body


def test_explore_refuses_a_bad_html_path_before_searching(tmp_path, capsys):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(f"base: {CONFIGS / 'edge-tpu.yaml'}\n" + EXPLORE)
    out = tmp_path / "r.jsonl"
    assert main(["explore", str(spec_path), "--out", str(out), "--budget", "4",
                 "--html", str(tmp_path / "no" / "e.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("--html ") and "\n" not in err and not out.exists()
