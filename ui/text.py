"""Safe text for st.markdown: user and card text is shown as text, never as Markdown, HTML or LaTeX."""

import html
import re

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_~$\[\]<>|#{}])")


def md_escape(text: str) -> str:
    """Backslash-escape every character Streamlit's Markdown would interpret."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def html_text(text: str) -> str:
    """Text for inside an HTML snippet we build ourselves: escaped, so it can never become markup."""
    return html.escape(text, quote=True)
