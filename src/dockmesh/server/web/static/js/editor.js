// The compose editor: a textarea with a line-number gutter; after a refused save, the offending line is
// marked in the gutter, selected and scrolled into view.
const editor = document.getElementById("compose-editor");
const area = document.getElementById("compose");
const gutter = document.getElementById("compose-gutter");

let lines = 0;
let errorLine = Number(editor.dataset.errorLine || 0);

function lineCount() {
  return area.value.split("\n").length;
}

function renderGutter() {
  const count = lineCount();
  if (count !== lines) {
    const frag = document.createDocumentFragment();
    for (let n = 1; n <= count; n += 1) {
      const div = document.createElement("div");
      div.textContent = String(n);
      frag.append(div);
    }
    // A spacer as tall as the textarea's horizontal scrollbar keeps the numbers aligned at the bottom.
    const spacer = document.createElement("div");
    spacer.className = "spacer";
    frag.append(spacer);
    gutter.replaceChildren(frag);
    lines = count;
  }
  for (const marked of gutter.querySelectorAll(".error-line")) marked.classList.remove("error-line");
  if (errorLine > 0 && errorLine <= count) gutter.children[errorLine - 1].classList.add("error-line");
  gutter.scrollTop = area.scrollTop;
}

function showLine(line) {
  const text = area.value;
  let start = 0;
  for (let n = 1; n < line; n += 1) {
    const next = text.indexOf("\n", start);
    if (next < 0) break;
    start = next + 1;
  }
  let end = text.indexOf("\n", start);
  if (end < 0) end = text.length;
  area.focus({ preventScroll: true });
  area.setSelectionRange(start, end);
  const height = parseFloat(getComputedStyle(area).lineHeight) || 18;
  area.scrollTop = Math.max(0, (line - 1) * height - area.clientHeight / 3);
  gutter.scrollTop = area.scrollTop;
}

area.addEventListener("input", () => {
  errorLine = 0; // the line number no longer points at the same text
  renderGutter();
});
area.addEventListener("scroll", () => {
  gutter.scrollTop = area.scrollTop;
});
// Tab indents (two spaces, as compose files do) instead of leaving the editor.
area.addEventListener("keydown", (event) => {
  if (event.key !== "Tab" || event.shiftKey || event.ctrlKey || event.altKey || event.metaKey) return;
  event.preventDefault();
  area.setRangeText("  ", area.selectionStart, area.selectionEnd, "end");
  renderGutter();
});

renderGutter();
if (errorLine > 0) showLine(errorLine);
