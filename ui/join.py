"""The presenter's "Show the room how to join": a QR code of this page's address, the address in large text, and
how many browser sessions the server has now.

The address is the page as the presenter sees it (its tab and settings, from the URL) without presenter mode:
an attendee who scans it lands on the same demo in attendee view. A presenter usually opens the app on the
laptop that serves it, as localhost, which no phone can reach: then the address uses the machine's network
address, as `streamlit run` prints it, or `$LLMLAB_PUBLIC_URL` where that is set (a tunnel, a DNS name).
"""

from __future__ import annotations

import html
import io
import os
import urllib.parse

import segno
import streamlit as st

from ui.shell import PRESENTER_KEY

PUBLIC_URL_ENV = "LLMLAB_PUBLIC_URL"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0")


def join_url(page_url: str, query: dict[str, str], network_ip: str | None, public_url: str | None = None) -> str:
    """The address attendees open: `page_url` (scheme, host, port, path; no query) with `query` less presenter
    mode and anything named like a token; a loopback host becomes `public_url`'s scheme and host, else
    `network_ip` (the port is kept)."""
    parts = urllib.parse.urlsplit(page_url)
    netloc = parts.netloc
    scheme = parts.scheme
    if parts.hostname in LOOPBACK_HOSTS:
        if public_url:
            public = urllib.parse.urlsplit(public_url if "://" in public_url else f"http://{public_url}")
            scheme, netloc = public.scheme, public.netloc
        elif network_ip:
            netloc = f"{network_ip}:{parts.port}" if parts.port else network_ip
    kept = {k: v for k, v in query.items() if k != PRESENTER_KEY and "token" not in k.lower()}
    return urllib.parse.urlunsplit((scheme, netloc, parts.path, urllib.parse.urlencode(kept), ""))


def qr_png(url: str, scale: int = 10) -> bytes:
    """The QR code of `url` as a PNG: black on white with the standard quiet zone, so a phone reads it on a dark
    theme too; error correction M (15%: a projector's glare)."""
    buffer = io.BytesIO()
    segno.make(url, error="m", micro=False).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


def connected_sessions() -> int | None:
    """Browser sessions connected to this server now (None where Streamlit's runtime does not say)."""
    try:
        from streamlit.runtime import Runtime

        return Runtime.instance()._session_mgr.num_active_sessions()  # no public API for this count
    except Exception:  # noqa: BLE001  (a count is a nicety: never an error in the page)
        return None


def _network_ip() -> str | None:
    from streamlit import net_util

    try:
        return net_util.get_internal_ip()
    except OSError:
        return None


def join_button(where=None) -> None:
    """The presenter's button that opens the join dialog (in `where`: a column; default: here)."""
    if (where or st).button("Join", key="join", icon=":material/qr_code_2:", width="stretch",
                            help="Show the room how to join: a QR code of this page, tab and settings."):  # fmt: skip
        show_join()


@st.dialog("Join this page", width="large")
def show_join() -> None:
    page_url = st.context.url or "http://localhost:8501"
    url = join_url(page_url, st.query_params.to_dict(), _network_ip(), os.environ.get(PUBLIC_URL_ENV))
    left, right = st.columns([1, 1], vertical_alignment="center")
    left.image(qr_png(url), caption="Scan with a phone camera", width="stretch")
    with right:
        parts = urllib.parse.urlsplit(url)
        st.markdown("Or type this address:")
        st.html(f'<div class="join-address">{html.escape(f"{parts.scheme}://{parts.netloc}{parts.path}")}</div>')
        st.caption("The QR code opens the same page, tab and settings, in attendee view; typed, the address opens "
                   "the page as it starts. The full link:")  # fmt: skip
        st.code(url, language=None, wrap_lines=True)
        sessions = connected_sessions()
        if sessions is not None:
            st.metric("Sessions connected now", sessions, help="Browser tabs open on this server, yours included.")
    if urllib.parse.urlsplit(url).hostname in LOOPBACK_HOSTS:
        st.warning(
            f"This address only works on this computer. Set ${PUBLIC_URL_ENV} to an address the room can reach.",
            icon="⚠️",
        )
