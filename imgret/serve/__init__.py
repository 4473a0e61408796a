"""``imgret serve``: a local web app over an index (search, why each photo matched, notes).

``app.create_app`` builds the FastAPI application; ``library`` holds the loaded index,
``explain`` scores a description's parts, ``thumbnails`` makes small copies of photos, and
``static/`` is the page (plain HTML, CSS and JavaScript shipped in the package: nothing is
fetched from a CDN or built with npm). Needs the ``serve`` extra (FastAPI, uvicorn).
"""
