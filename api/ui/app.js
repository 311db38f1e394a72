// The page's entry point: sign in (the token is checked by one cheap authenticated call
// and kept in sessionStorage), sign out, and switching between the two views.

import { ApiError, api, forgetToken, onUnauthorized, storeToken, storedToken } from "./api.js";
import { byId } from "./dom.js";
import { JobsView } from "./jobs.js";
import { SearchView } from "./search.js";

const VIEWS = ["search", "jobs"];
const search = new SearchView();
const jobs = new JobsView();
jobs.onFinished = () => loadRepos().catch(() => {});

async function loadRepos(token) {
  const body = await api("/v1/repos", { token });
  const repos = body.repos || [];
  search.setRepos(repos);
  jobs.setRepos(repos.map((repo) => repo.name));
  return repos;
}

function show(view, { focus = false } = {}) {
  const name = VIEWS.includes(view) ? view : "search";
  for (const other of VIEWS) byId(`view-${other}`).hidden = other !== name;
  for (const button of document.querySelectorAll(".nav-button")) {
    if (button.dataset.view === name) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  if (window.location.hash !== `#${name}`) window.history.replaceState(null, "", `#${name}`);
  if (name === "jobs") jobs.start();
  else jobs.stop();
  if (name === "search") loadRepos().catch(() => {});
  if (focus) byId(`${name}-title`).focus();
}

function signedIn(yes) {
  byId("login").hidden = yes;
  byId("nav").hidden = !yes;
  byId("sign-out").hidden = !yes;
  document.body.classList.toggle("signed-in", yes);
  if (!yes) {
    jobs.stop();
    for (const view of VIEWS) byId(`view-${view}`).hidden = true;
  }
}

function signOut(message = "") {
  forgetToken();
  signedIn(false);
  byId("login-error").textContent = message;
  const input = byId("login-token");
  input.value = "";
  input.focus();
}

function refusal(error) {
  if (error.status === 401) {
    return `The API refused this token: ${error.message}. `
      + "Check it, or create one with `quarry token create`.";
  }
  if (error.status === 403) {
    return `The API refused this token here: ${error.message}. The page needs a token`
      + " with the read scope (and write, to index or cancel jobs).";
  }
  return `Could not check the token: ${error.message}`;
}

async function signIn(event) {
  event.preventDefault();
  const error = byId("login-error");
  const token = byId("login-token").value.trim();
  if (!token) {
    error.textContent = "Enter an API token.";
    byId("login-token").focus();
    return;
  }
  error.textContent = "Checking…";
  try {
    await loadRepos(token);
  } catch (failure) {
    error.textContent = failure instanceof ApiError ? refusal(failure) : String(failure);
    byId("login-token").select();
    return;
  }
  storeToken(token);
  error.textContent = "";
  signedIn(true);
  show(window.location.hash.slice(1), { focus: true });
}

function boot() {
  for (const view of VIEWS) byId(`${view}-title`).setAttribute("tabindex", "-1");
  byId("login-form").addEventListener("submit", signIn);
  byId("sign-out").addEventListener("click", () => signOut("Signed out."));
  for (const button of document.querySelectorAll(".nav-button")) {
    button.addEventListener("click", () => show(button.dataset.view, { focus: true }));
  }
  window.addEventListener("hashchange", () => {
    if (storedToken()) show(window.location.hash.slice(1));
  });
  onUnauthorized((message) => signOut(`Signed out: the API refused the token (${message}).`));
  const token = storedToken();
  if (!token) {
    signedIn(false);
    byId("login-token").focus();
    return;
  }
  loadRepos(token)
    .then(() => {
      signedIn(true);
      show(window.location.hash.slice(1));
    })
    .catch((failure) => signOut(failure instanceof ApiError ? refusal(failure) : String(failure)));
}

boot();
