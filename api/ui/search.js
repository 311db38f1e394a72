// The search playground: the query form, the results (keyboard-focusable; Enter or a
// click opens one) and the detail panel with the result's graph neighbourhood.

import { api } from "./api.js";
import { breakable, byId, h, shortCommit, shortName } from "./dom.js";
import { neighbourhoodGraph } from "./graph.js";
import { highlighted, queryTerms } from "./highlight.js";

const EXPAND = "callers,callees,container";

export class SearchView {
  constructor() {
    this.form = byId("search-form");
    this.status = byId("search-status");
    this.results = byId("results");
    this.detail = byId("detail");
    this.words = [];
    this.commits = new Map(); // repository name -> its searchable commit (GET /v1/repos)
    this.opener = null;
    this.pending = null;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.run();
    });
    byId("detail-close").addEventListener("click", () => this.close());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && !this.detail.hidden) {
        event.preventDefault();
        this.close();
      }
    });
  }

  /** The repositories (``GET /v1/repos``): the filter's choices, and the commit each
   * result's title names. */
  setRepos(repos) {
    const names = repos.map((repo) => repo.name);
    this.commits = new Map(repos.map((repo) => [repo.name, repo.searchable_commit || ""]));
    const select = byId("search-repo");
    const chosen = select.value;
    select.replaceChildren(h("option", { value: "" }, "All repositories"),
      ...names.map((name) => h("option", { value: name }, name)));
    if (names.includes(chosen)) select.value = chosen;
  }

  async run() {
    const data = Object.fromEntries(new FormData(this.form));
    if (!String(data.q || "").trim()) {
      this.say("Type something to search for.");
      byId("search-q").focus();
      return;
    }
    this.close();
    if (this.pending) this.pending.abort();
    const pending = new AbortController();
    this.pending = pending;
    this.say("Searching…");
    this.form.setAttribute("aria-busy", "true");
    try {
      // the repositories again, so that each title names the commit searched now
      const [body, repos] = await Promise.all([
        api("/v1/search", { params: { ...data, expand: EXPAND }, signal: pending.signal }),
        api("/v1/repos", { signal: pending.signal }).catch(() => null),
      ]);
      if (repos) this.setRepos(repos.repos || []);
      this.words = queryTerms(data.q);
      this.render(body, data);
    } catch (error) {
      if (error.name === "AbortError") return;
      this.results.replaceChildren();
      this.say(`Search failed: ${error.message}`, true);
    } finally {
      if (this.pending === pending) {
        this.pending = null;
        this.form.removeAttribute("aria-busy");
      }
    }
  }

  say(message, isError = false) {
    this.status.textContent = message;
    this.status.classList.toggle("error", isError);
  }

  render(body, data) {
    const results = body.results || [];
    this.results.replaceChildren(...results.map((result, i) => this.item(result, i)));
    const where = data.repo ? ` in ${data.repo}` : "";
    const warned = (body.warnings || []).join("; ");
    this.say(`${results.length} result${results.length === 1 ? "" : "s"} for “${data.q}”${where}.`
      + (warned ? ` Note: ${warned}.` : ""));
  }

  /** The snapshot a result comes from: its repository and searchable commit. */
  where(result) {
    const commit = this.commits.get(result.repo) || "";
    return [
      h("span", { class: "result-repo" }, result.repo),
      commit ? h("span", { class: "result-ref", title: `commit ${commit}` },
        `@${shortCommit(commit)}`) : null,
    ];
  }

  item(result, index) {
    const lines = `${result.start_line}–${result.end_line}`;
    const open = h("button", { type: "button", class: "result-open",
      "aria-describedby": `result-meta-${index}` },
    h("span", { class: "result-snapshot" }, this.where(result)), " ",
    h("span", { class: "result-path" }, breakable(`${result.path}:${lines}`)));
    const li = h(
      "li",
      { class: "result", "data-index": index },
      h("div", { class: "result-head" },
        open,
        h("span", { class: "score", title: "fused score" }, result.score.toFixed(4))),
      h("p", { class: "meta", id: `result-meta-${index}` },
        result.symbol ? h("code", { class: "symbol" }, result.symbol) : null,
        h("span", { class: "kind" }, `${result.kind} · ${result.language}`),
        h("span", { class: "badges" },
          result.retrievers.map((name) => h("span", { class: `badge badge-${name}`,
            title: `rank ${result.ranks[name]} by ${name}` }, name)))),
      h("pre", { class: "snippet" }, h("code", {}, highlighted(result.snippet, this.words))),
    );
    open.addEventListener("click", (event) => {
      event.stopPropagation();
      this.open(result, li, open);
    });
    li.addEventListener("click", (event) => {
      if (window.getSelection().toString()) return; // selecting text is not choosing
      this.open(result, li, open);
    });
    return li;
  }

  open(result, li, opener) {
    for (const other of this.results.querySelectorAll(".result.selected")) {
      other.classList.remove("selected");
      other.querySelector(".result-open").removeAttribute("aria-current");
    }
    li.classList.add("selected");
    opener.setAttribute("aria-current", "true");
    this.opener = opener;
    const title = byId("detail-title");
    title.textContent = result.symbol || result.path;
    byId("detail-where").replaceChildren(
      h("span", { class: "result-snapshot" }, this.where(result)),
      h("span", {}, `${result.path}:${result.start_line}–${result.end_line}`),
      h("span", {}, `${result.kind} · ${result.language} · score ${result.score.toFixed(4)}`));
    byId("detail-snippet").replaceChildren(highlighted(result.snippet, this.words));
    this.detail.hidden = false; // shown first: the graph is drawn as wide as the panel
    document.body.classList.add("detail-open");
    this.neighbours(result);
    title.focus();
  }

  neighbours(result) {
    const hood = result.neighbours;
    const note = byId("detail-graph-note");
    const figure = byId("detail-graph");
    const lists = { callers: byId("detail-callers"), callees: byId("detail-callees"),
      container: byId("detail-container") };
    for (const list of Object.values(lists)) list.replaceChildren();
    figure.replaceChildren();
    if (!result.symbol) {
      note.textContent = "This chunk is not a symbol, so it has no graph neighbourhood.";
      return;
    }
    if (!hood) {
      note.textContent = "The code graph did not answer for this result.";
      return;
    }
    note.textContent = "";
    figure.append(neighbourhoodGraph(result.symbol, hood, figure.clientWidth),
      h("figcaption", { class: "help" }, "Callers above, callees below, the container on the left."));
    this.fill(lists.callers, hood.callers || [], result);
    this.fill(lists.callees, hood.callees || [], result);
    this.fill(lists.container, hood.container ? [hood.container] : [], result);
  }

  fill(list, symbols, { repo, symbol }) {
    if (!symbols.length) {
      list.append(h("li", { class: "none" }, "none"));
      return;
    }
    for (const sym of symbols) {
      const find = h("button", { type: "button", class: "link",
        title: `Search for ${sym.qualified_name}` }, breakable(sym.qualified_name));
      find.addEventListener("click", () => {
        byId("search-q").value = shortName(sym.qualified_name);
        byId("search-repo").value = repo;
        this.run();
      });
      list.append(h("li", { class: "symbol-item", "data-name": sym.qualified_name },
        find, h("span", { class: "where" },
          breakable(`${sym.kind} · ${sym.path}:${sym.start_line}`
          + (sym.qualified_name === symbol ? " · this symbol (recursive)" : "")))));
    }
  }

  close() {
    if (this.detail.hidden) return;
    this.detail.hidden = true;
    document.body.classList.remove("detail-open");
    if (this.opener && this.opener.isConnected) this.opener.focus();
  }
}
