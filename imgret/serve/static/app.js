// imgret's page: search as you type, why each photo matched, notes, more like this.
// Plain JavaScript on the JSON API only; text goes in with textContent, never as HTML.
"use strict";

const PAGE = 20;
const DEBOUNCE_MS = 250;
const PART_NAMES = {
  caption: "caption",
  counts: "objects counted",
  possible: "objects perhaps seen",
  text: "text in the photo",
  note: "your note",
  tags: "tags",
};

const $ = (id) => document.getElementById(id);
const state = { mode: null, query: "", path: "", offset: 0, done: false, loading: false,
                seq: 0, hits: [], open: null };

async function api(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    throw new Error((body && body.error) || `the server answered ${response.status}`);
  }
  return body;
}

function marked(text, spans) {
  // The text as nodes, the query's words (spans [start, end)) in <mark>.
  const fragment = document.createDocumentFragment();
  let at = 0;
  for (const [start, end] of spans || []) {
    if (start > at) fragment.append(text.slice(at, start));
    const mark = document.createElement("mark");
    mark.textContent = text.slice(start, end);
    fragment.append(mark);
    at = end;
  }
  fragment.append(text.slice(at));
  return fragment;
}

function partList(explanation, into) {
  into.replaceChildren();
  if (!explanation) return;
  for (const part of explanation.parts) {
    const item = document.createElement("li");
    item.className = "part" + (part.part === explanation.best ? " best" : "");
    item.dataset.part = part.part;
    const name = document.createElement("span");
    name.className = "part-name";
    name.textContent = PART_NAMES[part.part] || part.part;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.setProperty("--w", `${Math.max(0, Math.min(1, part.similarity)) * 100}%`);
    const score = document.createElement("span");
    score.className = "part-score";
    score.textContent = part.similarity.toFixed(2);
    const text = document.createElement("span");
    text.className = "part-text";
    text.append(marked(part.text, part.highlights));
    item.append(name, bar, score, text);
    into.append(item);
  }
}

function card(hit) {
  const item = document.createElement("li");
  item.className = "hit";
  item.tabIndex = 0;
  item.dataset.path = hit.relpath;
  const img = document.createElement("img");
  img.src = hit.thumbnail_url;
  img.alt = hit.description;
  img.loading = "lazy";
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.textContent = `#${hit.rank} · ${hit.score.toFixed(3)}`;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = hit.relpath;
  const parts = document.createElement("ul");
  parts.className = "parts compact";
  partList(hit.explanation, parts);
  if (!hit.explanation) {
    const plain = document.createElement("li");
    plain.textContent = hit.description;
    parts.append(plain);
  }
  const similar = document.createElement("button");
  similar.type = "button";
  similar.className = "similar";
  similar.textContent = "More like this";
  similar.addEventListener("click", (event) => { event.stopPropagation(); showSimilar(hit); });
  item.append(img, badge, name, parts, similar);
  item.addEventListener("click", () => openHit(hit));
  item.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target === item) openHit(hit);
  });
  return item;
}

function setStatus(text, kind) {
  const status = $("status");
  status.textContent = text;
  status.className = kind || "";
}

async function load(reset) {
  if (reset) {
    state.offset = 0; state.done = false; state.hits = [];
    state.seq += 1;
    $("results").replaceChildren();
  }
  if (state.done || state.loading || !state.mode) return;
  const seq = state.seq;
  state.loading = true;
  const params = new URLSearchParams({ k: PAGE, offset: state.offset });
  let url;
  if (state.mode === "similar") {
    params.set("path", state.path);
    url = `/api/similar?${params}`;
  } else {
    params.set("q", state.query);
    url = `/api/search?${params}`;
  }
  try {
    const body = await api(url);
    if (seq !== state.seq) return;  // a newer search started meanwhile
    const list = $("results");
    for (const hit of body.hits) list.append(card(hit));
    state.hits.push(...body.hits);
    state.offset += body.hits.length;
    state.done = body.hits.length < PAGE;
    if (!state.hits.length) {
      setStatus(state.mode === "similar" ? "No other photo in the index."
        : `No photo matches “${state.query}”.`, "empty");
    } else {
      const what = state.mode === "similar" ? `photos like ${state.path}` : `“${state.query}”`;
      setStatus(`${state.hits.length}${state.done ? "" : "+"} photos for ${what}, best first.`);
    }
  } catch (error) {
    if (seq === state.seq) setStatus(error.message, "error");
  } finally {
    if (seq === state.seq) state.loading = false;
  }
}

function search(query) {
  const q = query.trim();
  if (!q) {
    state.mode = null; state.seq += 1; state.loading = false;
    $("results").replaceChildren();
    setStatus("Type what you are looking for: imgret ranks the photos by how close their "
      + "descriptions are to your words.");
    return;
  }
  state.mode = "search"; state.query = q; state.loading = false;
  load(true);
}

function showSimilar(hit) {
  closeDialogs();
  state.mode = "similar"; state.path = hit.relpath; state.loading = false;
  load(true);
}

function openHit(hit) {
  state.open = hit;
  $("detail-title").textContent = hit.relpath;
  $("detail-image").src = hit.image_url;
  $("detail-image").alt = hit.description;
  partList(hit.explanation, $("detail-parts"));
  $("note").value = hit.notes || "";
  $("note-status").textContent = "";
  $("note-status").className = "";
  $("detail").showModal();
  $("note").focus();
}

async function saveNote() {
  const hit = state.open;
  if (!hit) return;
  const status = $("note-status");
  status.textContent = "Saving and re-embedding …";
  status.className = "";
  try {
    const body = await api("/api/notes", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ path: hit.relpath, text: $("note").value,
                             query: state.mode === "search" ? state.query : null }),
    });
    state.open = { ...hit, ...body.hit, rank: hit.rank };
    partList(body.hit.explanation, $("detail-parts"));
    status.textContent = "Saved. The results below are ranked again.";
    status.className = "ok";
    await load(true);
  } catch (error) {
    status.textContent = error.message;
    status.className = "error";
  }
}

function closeDialogs() {
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
}

async function showAbout() {
  const facts = $("about-facts");
  facts.replaceChildren();
  $("about").showModal();
  try {
    const info = await api("/api/info");
    const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "–");
    const rows = [
      ["Images", `${info.images} (${info.embedded} searchable)`],
      ["Gallery", info.gallery || "–"],
      ["Notes", info.notes],
      ["Skipped files", info.skipped],
      ["Last build", when(info.updated)],
      ["Created", when(info.created)],
      ...Object.entries(info.stages || {}).map(([stage, entry]) => [stage, entry.model]),
    ];
    for (const [name, value] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = String(value);
      facts.append(dt, dd);
    }
  } catch (error) {
    const dd = document.createElement("dd");
    dd.textContent = error.message;
    facts.append(dd);
  }
}

function moveFocus(key) {
  const cards = [...document.querySelectorAll("#results .hit")];
  if (!cards.length) return false;
  const at = cards.indexOf(document.activeElement);
  const columns = Math.max(1, Math.round($("results").clientWidth / cards[0].offsetWidth));
  const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns }[key];
  let next = at < 0 ? 0 : at + step;
  if (at < 0 && key === "ArrowUp") return false;
  if (next < 0) { $("q").focus(); return true; }
  next = Math.min(cards.length - 1, next);
  cards[next].focus();
  return true;
}

function start() {
  const input = $("q");
  let timer = null;
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(() => search(input.value), DEBOUNCE_MS);
  });
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    search(input.value);
  });
  document.addEventListener("keydown", (event) => {
    if (document.querySelector("dialog[open]")) return;  // dialogs close on Esc themselves
    if (event.key === "Escape") {
      input.value = ""; search(""); input.focus();
    } else if (event.key.startsWith("Arrow") && (event.target !== input
               || event.key === "ArrowDown")) {
      if (moveFocus(event.key)) event.preventDefault();
    }
  });
  $("save-note").addEventListener("click", saveNote);
  $("detail-similar").addEventListener("click", () => state.open && showSimilar(state.open));
  $("about-button").addEventListener("click", showAbout);
  new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) load(false);
  }, { rootMargin: "400px" }).observe($("more"));
}

start();
