"""Plain links that open another page inside the running app, as ``st.page_link`` does.

A link drawn in HTML (``st.html``) reloads the whole app when followed: a new Streamlit session,
every script and chart library loaded again. ``install()`` adds one click handler to the page:
a plain left click on a link with class ``IN_APP_CLASS`` becomes a history entry and a
``popstate`` event, which Streamlit handles as back/forward navigation (it runs the page the URL
names, with the URL's query parameters, in the same session). Modified clicks (new tab, new
window) and every other link behave as the browser does. The script is a constant: no value of
a trace ever reaches it.
"""

from __future__ import annotations

import streamlit as st

IN_APP_CLASS = "retrace-in-app"

_SCRIPT = f"""<script>
(() => {{
  if (window.__retraceInApp) return;
  window.__retraceInApp = true;
  document.addEventListener("click", (event) => {{
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    const link = event.target instanceof Element && event.target.closest("a.{IN_APP_CLASS}");
    if (!link || link.origin !== window.location.origin) return;
    event.preventDefault();
    window.history.pushState(null, "", link.href);
    window.dispatchEvent(new PopStateEvent("popstate"));
    window.scrollTo(0, 0);
  }});
}})();
</script>"""


def install() -> None:
    """Make this page's ``IN_APP_CLASS`` links navigate inside the app (once per browser page)."""
    st.html(_SCRIPT, unsafe_allow_javascript=True)
