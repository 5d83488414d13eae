// Role form: preview the scope as it is typed — its parse error with where, or the hosts it matches now.
const input = document.getElementById("scope");
const box = document.getElementById("scope-preview");
let timer = 0;
let asked = 0;

async function preview() {
  const serial = ++asked;
  try {
    const res = await fetch("/roles/preview?scope=" + encodeURIComponent(input.value), {
      credentials: "same-origin",
    });
    if (res.ok && serial === asked) box.innerHTML = await res.text();
  } catch {
    // Network blip: the next keystroke asks again; saving validates on the server anyway.
  }
}

if (input && box && !input.disabled) {
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(preview, 250);
  });
}
