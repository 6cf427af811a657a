"""Open the built book in headless Chromium and check what a reader sees on every chapter page.

The pages and their titles come from the chapter registry (advlab.chapters), so a new chapter is
checked without editing this file. Checks the rendered DOM (after JavaScript, so MathJax has
typeset): the title, at least one figure image that loaded and one table on each chapter page,
typeset maths, no role left unrendered (a glue inside maths) and no raw parameters cell. On every
API reference page (advlab.apidoc): its title and an entry for each public name the page documents.
"""
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from advlab.apidoc import API_DIR, API_PACKAGES, home, page_name, public_names
from advlab.chapters import CHAPTERS

site = Path(sys.argv[1] if len(sys.argv) > 1 else "_build/html").resolve()
checks = {"book/intro.html": ["Threat models and notation"]}
checks.update({f"book/{name}.html": [ch.title] for name, ch in CHAPTERS.items()})
api = {f"book/{API_DIR}/{page_name(p)}.html": [f"advlab.{p}"] for p in API_PACKAGES}
entries = {f"book/{API_DIR}/{page_name(p)}.html": [f'id="advlab.{p}.{n}"' for n in public_names(p) if home(p, n) == p]
           for p in API_PACKAGES}
checks.update(api)
failed = False
for page, titles in checks.items():
    path = site / page
    if not path.is_file():
        print(f"check_site: {path} missing")
        failed = True
        continue
    with tempfile.TemporaryDirectory() as profile:
        cmd = ["timeout", "120", "chromium", "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update", "--no-first-run",
               "--disable-sync", "--disable-quic", f"--user-data-dir={profile}", "--window-size=1280,900",
               "--virtual-time-budget=10000", "--dump-dom", path.as_uri()]
        dom = subprocess.run(cmd, capture_output=True, text=True).stdout
    problems = []
    for t in titles:
        if t not in dom:
            problems.append(f"title {t!r} not rendered")
    if page in api:
        missing = [e.split('"')[1] for e in entries[page] if e not in dom]
        if missing:
            problems.append(f"public names without an entry: {missing}")
    elif "mjx-container" not in dom:
        problems.append("no typeset maths (MathJax did not run)")
    if page != "book/intro.html" and page not in api:
        imgs = re.findall(r'<img[^>]+src="([^"]+)"', dom)
        figs = [s for s in imgs if s.endswith(".png") or s.startswith("data:image/png")]
        missing = [s for s in figs if not s.startswith("data:") and not (path.parent / s).is_file()]
        if not figs:
            problems.append("no figure")
        if missing:
            problems.append(f"figures not found: {missing}")
        if "<table" not in dom:
            problems.append("no table")
    status = "ok" if not problems else "FAILED: " + "; ".join(problems)
    print(f"check_site: {page}: {status}")
    failed |= bool(problems)
sys.exit(1 if failed else 0)
