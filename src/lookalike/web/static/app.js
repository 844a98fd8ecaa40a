// lookalike: a little plain JavaScript over server-rendered pages (no build step).
// Adds: search by dropped / pasted / chosen image, "Load more" in place, the viewer dialog (prev/next,
// copy path, a clear state for files moved or edited since indexing), and "More like these" counts.
// Everything else (text search, "Find similar") is plain links and forms that work without it.
(() => {
  "use strict";

  const body = document.body;
  const maxUpload = Number(body.dataset.maxUpload || 0);
  const pageSize = Number(body.dataset.pageSize || 30);
  const results = document.getElementById("results");
  const searchForm = document.getElementById("search-form");
  const uploadForm = document.getElementById("upload-form");
  const uploadInput = document.getElementById("upload");
  const viewer = document.getElementById("viewer");
  const status = document.getElementById("status");
  const FILTERS = ["folder", "format", "modified_after", "modified_before", "min_size", "max_size", "min_score", "regions"];
  const OPTIONAL = [...FILTERS, "n", "not"];
  let viewerIndex = -1;
  let uploadFile = null;
  let previewUrl = null;

  function announce(text) {
    if (status) status.textContent = text;
  }

  function filterParams() {
    const params = new URLSearchParams();
    if (!searchForm) return params;
    for (const name of FILTERS) {
      const field = searchForm.elements.namedItem(name);
      if (!field || (field.type === "checkbox" && !field.checked)) continue;
      if (field.value.trim()) params.set(name, field.value.trim());
    }
    return params;
  }

  function showError(message) {
    if (!results) return;
    const box = document.createElement("div");
    box.className = "alert";
    box.setAttribute("role", "alert");
    const strong = document.createElement("strong");
    strong.textContent = "That did not work.";
    box.append(strong, " " + message);
    results.replaceChildren(box);
  }

  async function errorMessage(response) {
    try {
      const data = await response.json();
      if (data && data.error && data.error.message) return data.error.message;
    } catch (_) {
      /* not JSON: fall through */
    }
    return `the server answered ${response.status} ${response.statusText}`.trim();
  }

  async function fetchFragment(url, options = {}) {
    let response;
    try {
      response = await fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" }, ...options });
    } catch (_) {
      throw new Error("the server could not be reached; is `lookalike serve` still running?");
    }
    if (!response.ok) throw new Error(await errorMessage(response));
    const template = document.createElement("template");
    template.innerHTML = await response.text();
    return template.content;
  }

  function busy(on) {
    if (results) results.setAttribute("aria-busy", on ? "true" : "false");
  }

  function setPreview(file) {
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = URL.createObjectURL(file);
    for (const slot of document.querySelectorAll("[data-upload-preview]")) {
      const img = document.createElement("img");
      img.src = previewUrl;
      img.alt = "Your image" + (file.name ? ` (${file.name})` : "");
      img.width = 48;
      img.height = 48;
      slot.replaceChildren(img);
    }
  }

  function uploadBody(file) {
    const form = new FormData();
    form.append("image", file, file.name || "pasted-image");
    return form;
  }

  async function searchUpload(file) {
    if (!file) return;
    if (maxUpload && file.size > maxUpload) {
      const mib = (maxUpload / 1048576).toFixed(1);
      showError(`the image is larger than this server's ${mib} MiB upload limit.`);
      return;
    }
    uploadFile = file;
    busy(true);
    announce("Searching with your image…");
    const params = filterParams();
    const query = new URLSearchParams(params);
    query.set("k", String(pageSize));
    try {
      const fragment = await fetchFragment(`/partials/upload?${query}`, { method: "POST", body: uploadBody(file) });
      results.replaceChildren(fragment);
      setPreview(file);
      params.set("upload", "1");
      history.pushState({ upload: true }, "", `/?${params}`);
      const count = results.querySelectorAll(".grid > li").length;
      announce(count ? `${count} similar images found.` : "No similar images found.");
    } catch (error) {
      showError(error.message);
      announce(error.message);
    } finally {
      busy(false);
    }
  }

  async function loadMore(control) {
    const section = control.closest(".results");
    const grid = section && section.querySelector(".grid");
    if (!grid) return;
    const isUpload = section.dataset.mode === "upload";
    if (isUpload && !uploadFile) {
      showError("drop or paste the image again to see more results (uploads are not kept).");
      return;
    }
    control.setAttribute("aria-disabled", "true");
    busy(true);
    try {
      const options = isUpload ? { method: "POST", body: uploadBody(uploadFile) } : {};
      const fragment = await fetchFragment(control.dataset.more, options);
      const items = [...fragment.querySelectorAll(".grid > li")];
      grid.append(...items);
      const nextMore = fragment.querySelector(".more");
      const holder = control.closest(".more");
      if (nextMore) holder.replaceWith(nextMore);
      else holder.remove();
      if (!isUpload) {
        const url = new URL(window.location.href);
        url.searchParams.set("n", String(grid.children.length));
        history.replaceState(history.state, "", url);
      }
      announce(`${items.length} more results.`);
      const first = items[0] && items[0].querySelector("a.thumb");
      if (first) first.focus();
    } catch (error) {
      control.removeAttribute("aria-disabled");
      showError(error.message);
    } finally {
      busy(false);
    }
  }

  function withFilters(href) {
    const params = filterParams().toString();
    return params ? `${href}&${params}` : href;
  }

  function viewerCards() {
    return [...document.querySelectorAll(".card a.thumb[data-view]")];
  }

  // A file moved or edited since indexing answers 410 with a message: show it, not a broken image.
  async function goneMessage(url) {
    try {
      const response = await fetch(url, { credentials: "same-origin" });
      if (response.ok) return null;
      return await errorMessage(response);
    } catch (_) {
      return "the image could not be loaded; is `lookalike serve` still running?";
    }
  }

  function showGone(box, message) {
    box.textContent = "";
    const strong = document.createElement("strong");
    strong.textContent = "This file has changed since it was indexed. ";
    box.append(strong, message);
    box.hidden = false;
  }

  function openAt(index) {
    const links = viewerCards();
    if (index < 0 || index >= links.length) return false;
    try {
      viewerIndex = index;
      return openViewer(JSON.parse(links[index].dataset.view), index, links.length);
    } catch (_) {
      return false;
    }
  }

  function openViewer(card, index, total) {
    if (!viewer || typeof viewer.showModal !== "function") return false;
    const img = document.getElementById("viewer-img");
    const gone = document.getElementById("viewer-gone");
    gone.hidden = true;
    img.hidden = false;
    img.src = card.browser_displayable ? card.urls.image : card.urls.preview;
    document.getElementById("viewer-prev").disabled = index <= 0;
    document.getElementById("viewer-next").disabled = index >= total - 1;
    document.getElementById("viewer-position").textContent = `${index + 1} of ${total}`;
    document.getElementById("viewer-path").value = card.path;
    document.getElementById("viewer-copy").textContent = "Copy path";
    img.alt = `${card.name} (${card.width}×${card.height}, ${String(card.format).toUpperCase()})`;
    document.getElementById("viewer-title").textContent = card.name;
    const rows = [
      ["Score", typeof card.score === "number" ? card.score.toFixed(3) : null],
      ["Folder", card.folder],
      ["Format", String(card.format).toUpperCase()],
      ["Dimensions", `${card.width} × ${card.height} px`],
      ["File size", card.size != null ? `${Number(card.size).toLocaleString()} bytes` : null],
      ["Modified", card.modified ? new Date(card.modified).toLocaleString() : null],
    ];
    const meta = document.getElementById("viewer-meta");
    meta.replaceChildren();
    for (const [label, value] of rows) {
      if (value == null) continue;
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = value;
      meta.append(dt, dd);
    }
    document.getElementById("viewer-similar").href = withFilters(card.urls.page);
    const folderUrl = new URL(window.location.href);
    folderUrl.searchParams.set("folder", card.folder);
    folderUrl.searchParams.delete("n");
    folderUrl.searchParams.delete("upload");
    document.getElementById("viewer-folder").href = folderUrl.pathname + folderUrl.search;
    document.getElementById("viewer-original").href = card.urls.image;
    const partLink = document.getElementById("viewer-part");
    if (partLink) partLink.href = card.urls.view;
    if (!viewer.open) viewer.showModal();
    return true;
  }

  async function copyPath() {
    const field = document.getElementById("viewer-path");
    const button = document.getElementById("viewer-copy");
    try {
      await navigator.clipboard.writeText(field.value);
    } catch (_) {
      field.select(); // no clipboard access: leave the path selected for Ctrl+C
      button.textContent = "Press Ctrl+C";
      announce("The path is selected: press Ctrl+C to copy it.");
      return;
    }
    button.textContent = "Copied";
    announce("Path copied.");
  }

  function updateFeedback() {
    const button = document.getElementById("more-like-these");
    if (!button) return;
    const count = document.querySelectorAll('input[form="feedback"]:checked').length;
    button.textContent = count ? `More like these (${count})` : "More like these";
  }

  document.addEventListener("click", (event) => {
    const more = event.target.closest("[data-more]");
    if (more) {
      event.preventDefault();
      if (more.getAttribute("aria-disabled") !== "true") loadMore(more);
      return;
    }
    const thumb = event.target.closest("a.thumb[data-view]");
    if (thumb && event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey && !event.altKey) {
      if (openAt(viewerCards().indexOf(thumb))) event.preventDefault();
    }
  });

  document.addEventListener("change", (event) => {
    if (event.target.matches('input[form="feedback"]')) updateFeedback();
  });

  // A thumbnail that fails to load: ask why, and show the server's message in its place.
  document.addEventListener(
    "error",
    async (event) => {
      const img = event.target;
      if (!(img instanceof HTMLImageElement) || !img.closest(".card")) return;
      const message = await goneMessage(img.src);
      if (!message) return;
      const box = document.createElement("div");
      box.className = "gone";
      box.setAttribute("role", "note");
      showGone(box, message);
      img.replaceWith(box);
    },
    true,
  );

  if (viewer) {
    viewer.addEventListener("click", (event) => {
      if (event.target === viewer) viewer.close();
    });
    document.getElementById("viewer-prev").addEventListener("click", () => openAt(viewerIndex - 1));
    document.getElementById("viewer-next").addEventListener("click", () => openAt(viewerIndex + 1));
    document.getElementById("viewer-copy").addEventListener("click", copyPath);
    viewer.addEventListener("keydown", (event) => {
      if (event.target instanceof HTMLInputElement) return;
      if (event.key === "ArrowLeft") openAt(viewerIndex - 1);
      if (event.key === "ArrowRight") openAt(viewerIndex + 1);
    });
    const viewerImg = document.getElementById("viewer-img");
    viewerImg.addEventListener("error", async () => {
      if (!viewer.open || viewerImg.src.startsWith("data:")) return;
      const message = await goneMessage(viewerImg.src);
      if (!message) return;
      viewerImg.hidden = true;
      showGone(document.getElementById("viewer-gone"), message);
    });
    viewer.addEventListener("close", () => {
      document.getElementById("viewer-img").src = "data:,";
    });
  }

  // Keep shared addresses short: unused filter fields are not submitted.
  if (searchForm) {
    searchForm.addEventListener("submit", () => {
      for (const field of searchForm.elements) {
        if (OPTIONAL.includes(field.name) && !field.value.trim()) field.disabled = true;
      }
    });
    window.addEventListener("pageshow", () => {
      for (const field of searchForm.elements) field.disabled = false;
    });
  }

  if (uploadInput) {
    uploadInput.addEventListener("change", () => {
      const file = uploadInput.files && uploadInput.files[0];
      if (file) searchUpload(file);
      uploadInput.value = "";
    });
  }
  if (uploadForm) {
    uploadForm.addEventListener("submit", (event) => {
      event.preventDefault();
      const file = uploadInput.files && uploadInput.files[0];
      if (file) searchUpload(file);
    });
  }

  const hasFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
  document.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    body.classList.add("dragging");
  });
  document.addEventListener("dragleave", (event) => {
    if (!event.relatedTarget) body.classList.remove("dragging");
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    body.classList.remove("dragging");
    const file = event.dataTransfer.files[0];
    if (file) searchUpload(file);
  });

  document.addEventListener("paste", (event) => {
    const data = event.clipboardData;
    if (!data) return;
    const file = [...data.files].find((f) => f.type.startsWith("image/"));
    if (!file) return; // plain text pastes into the search box as usual
    event.preventDefault();
    searchUpload(file);
  });

  // "Search this part": a box drawn on the single-image page fills the form and submits it.
  const part = document.querySelector("figure.part[data-part-form]");
  if (part) {
    const form = document.getElementById(part.dataset.partForm);
    const img = part.querySelector("img");
    const box = document.createElement("div");
    box.className = "part-box";
    box.hidden = true;
    part.append(box);
    let start = null;
    const at = (event) => {
      const r = img.getBoundingClientRect();
      const x = Math.min(1, Math.max(0, (event.clientX - r.left) / r.width));
      const y = Math.min(1, Math.max(0, (event.clientY - r.top) / r.height));
      return { x, y };
    };
    const frame = (a, b) => ({
      x0: Math.min(a.x, b.x), y0: Math.min(a.y, b.y), x1: Math.max(a.x, b.x), y1: Math.max(a.y, b.y),
    });
    const show = (f) => {
      box.hidden = false;
      box.style.left = `${img.offsetLeft + f.x0 * img.offsetWidth}px`;
      box.style.top = `${img.offsetTop + f.y0 * img.offsetHeight}px`;
      box.style.width = `${(f.x1 - f.x0) * img.offsetWidth}px`;
      box.style.height = `${(f.y1 - f.y0) * img.offsetHeight}px`;
    };
    part.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      event.preventDefault();
      start = at(event);
      part.setPointerCapture(event.pointerId);
    });
    part.addEventListener("pointermove", (event) => {
      if (start) show(frame(start, at(event)));
    });
    part.addEventListener("pointerup", (event) => {
      if (!start) return;
      const f = frame(start, at(event));
      start = null;
      if (f.x1 - f.x0 < 0.01 || f.y1 - f.y0 < 0.01) {
        box.hidden = true; // a click, not a box
        return;
      }
      show(f);
      form.elements.namedItem("box").value = [f.x0, f.y0, f.x1, f.y1].map((v) => v.toFixed(4)).join(",");
      form.requestSubmit();
    });
  }

  // A back/forward step to a page we changed in place: let the server render that URL.
  window.addEventListener("popstate", () => window.location.reload());
})();
