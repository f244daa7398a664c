"""A room opening the link at once on a fresh server: no session may see an error (issue 13).

A fresh `streamlit run app.py`; as soon as it answers, sessions arrive within a second, spread over every page,
each opening its page by deep link over Streamlit's websocket (bench/stampede.py). Every session must draw its
page's first chart, and no session may show a traceback or the app's "Something went wrong" message; the server
log must hold no traceback. (Before the warm-up of ui/warm.py, 1 to 4 of 10 such sessions failed with
"ImportError: cannot import name ..." from transformers' and trl's lazy modules.) No timing is asserted.
"""

import pytest

from bench.cold_start import page_names
from bench.stampede import stampede

pytestmark = pytest.mark.server


def test_ten_sessions_arriving_together_on_a_fresh_server_all_draw_their_page():
    result = stampede(sessions=10, spread_s=1.0, timeout_s=300)
    assert result.errors == []
    pages = page_names()
    assert {page: len(result.first_chart_s.get(page, [])) for page in pages} == {page: 2 for page in pages}
