// The sign-in and sign-up pages: send the form, show what went wrong, and
// offer Google or GitHub when the operator has set them up.
import { api, describe } from "./api.js";

const OAUTH_ERRORS = {
  oauth_state: "That sign-in could not be verified. Please start it again.",
  oauth_denied: "Sign-in was cancelled at the provider.",
  oauth_failed: "The provider did not confirm who you are. Please try again.",
};

const form = document.querySelector("form[data-auth]");
const alertBox = document.getElementById("form-error");
const submit = form.querySelector("button[type=submit]");
const submitLabel = submit.textContent;
let countdown = null;

function showError(message) {
  alertBox.textContent = message;
  alertBox.hidden = false;
}

// A 429 says how long to wait: count it down on the button, then let them retry.
function waitThenRetry(seconds) {
  clearInterval(countdown);
  let left = seconds;
  submit.disabled = true;
  const tick = () => {
    if (left <= 0) {
      clearInterval(countdown);
      submit.disabled = false;
      submit.textContent = submitLabel;
      return;
    }
    submit.textContent = `Try again in ${left}s`;
    left -= 1;
  };
  tick();
  countdown = setInterval(tick, 1000);
}

async function signIn(email, password) {
  await api("/auth/sign-in", { method: "POST", body: { email, password } });
  window.location.assign("/app");
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  alertBox.hidden = true;
  const data = Object.fromEntries(new FormData(form));
  submit.disabled = true;
  form.setAttribute("aria-busy", "true");
  try {
    if (form.dataset.auth === "signup") {
      const body = { email: data.email, password: data.password };
      if (data.full_name.trim()) body.full_name = data.full_name.trim();
      await api("/api/auth/signup", { method: "POST", body });
    }
    await signIn(data.email, data.password);
  } catch (error) {
    showError(describe(error));
    if (error.status === 429 && error.retryAfter) {
      waitThenRetry(error.retryAfter);
    } else {
      submit.disabled = false;
    }
  } finally {
    form.removeAttribute("aria-busy");
  }
});

const code = new URLSearchParams(window.location.search).get("error");
if (code && OAUTH_ERRORS[code]) showError(OAUTH_ERRORS[code]);

async function showProviders() {
  const box = document.getElementById("oauth");
  let providers = [];
  try {
    providers = await api("/auth/providers");
  } catch {
    return; // Email and password still work; the buttons just stay hidden.
  }
  for (const provider of providers) {
    const link = document.createElement("a");
    link.className = "button secondary wide";
    link.href = `/auth/${encodeURIComponent(provider.name)}`;
    link.textContent = `Continue with ${provider.label}`;
    link.dataset.provider = provider.name;
    box.querySelector(".oauth-buttons").append(link);
  }
  box.hidden = providers.length === 0;
}

showProviders();
