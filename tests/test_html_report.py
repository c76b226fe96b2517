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
