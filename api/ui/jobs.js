// The jobs dashboard: enqueue a repository, and a table of its jobs (one row each,
// newest first), filtered by repository and status and paged on the server
// (GET /v1/jobs?status=&limit=&offset=). Polled every second while a listed job is
// not finished. A row's Details show the stage counts, errors, waits and webhook
// deliveries; a running one can be cancelled.

import { api } from "./api.js";
import { byId, duration, h, shortCommit, when } from "./dom.js";

const POLL_MS = 1000;
const RETRY_MS = 3000;
const TERMINAL = new Set(["done", "failed", "cancelled"]);
const COLUMNS = 7;

function bars(job) {
  const f = job.files || {};
  const c = job.chunks || {};
  const todo = f.todo || 0;
  return [
    ["files-chunked", "Files chunked", f.chunked || 0, todo],
    ["files-embedded", "Files embedded", f.embedded || 0, todo],
    ["files-written", "Files written", f.written || 0, todo],
    ["chunks", "Chunks embedded or cached", (c.embedded || 0) + (c.cached || 0), c.total || 0],
  ];
}

/** "running · embed"; the stage only when it says more than the status. */
export function stateText(job) {
  const stage = String(job.stage || "");
  if (TERMINAL.has(job.status) || !stage || stage === job.status) return job.status;
  return `${job.status} · ${stage}`;
}

/** A time short enough for a table cell: the time of day when it is today. */
function shortWhen(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  const today = new Date().toDateString() === date.toDateString();
  return today
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : date.toLocaleDateString([], { year: "numeric", month: "short", day: "numeric" });
}

function took(job, now) {
  if (!job.started_at) return "—";
  const end = job.finished_at ? new Date(job.finished_at) : now;
  return duration((end - new Date(job.started_at)) / 1000);
}

export class JobsView {
  constructor() {
    this.form = byId("job-form");
    this.list = byId("jobs");
    this.status = byId("jobs-status");
    this.filter = byId("jobs-repo");
    this.statuses = byId("jobs-filter");
    this.pageSize = byId("jobs-page-size");
    this.rows = new Map();
    this.asked = 0; // the newest refresh: an older answer that comes later is dropped
    this.offset = 0;
    this.next = null;
    this.timer = null;
    this.active = false;
    this.onFinished = () => {};
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.enqueue();
    });
    for (const select of [this.filter, this.statuses, this.pageSize]) {
      select.addEventListener("change", () => this.turn(0));
    }
    byId("jobs-refresh").addEventListener("click", () => this.refresh());
    byId("jobs-newer").addEventListener("click", () => this.turn(this.offset - this.limit));
    byId("jobs-older").addEventListener("click", () => this.turn(this.next));
  }

  get limit() {
    return Number(this.pageSize.value) || 25;
  }

  setRepos(names) {
    const chosen = this.filter.value;
    this.filter.replaceChildren(h("option", { value: "" }, "All repositories"),
      ...names.map((name) => h("option", { value: name }, name)));
    if (names.includes(chosen)) this.filter.value = chosen;
  }

  start() {
    this.active = true;
    this.refresh();
  }

  stop() {
    this.active = false;
    clearTimeout(this.timer);
    this.timer = null;
  }

  say(message, isError = false) {
    this.status.textContent = message;
    this.status.classList.toggle("error", isError);
  }

  /** Show the page at ``offset`` (a new filter starts again at the newest). */
  turn(offset) {
    this.offset = Math.max(0, offset || 0);
    this.list.replaceChildren();
    this.rows.clear();
    this.refresh();
  }

  async enqueue() {
    const error = byId("job-form-error");
    const data = Object.fromEntries(new FormData(this.form));
    const body = { source: String(data.source || "").trim() };
    if (!body.source) {
      error.textContent = "Source: give a folder path the workers can read, or a git URL.";
      byId("job-source").focus();
      return;
    }
    for (const name of ["repo", "ref"]) {
      const value = String(data[name] || "").trim();
      if (value) body[name] = value;
    }
    error.textContent = "";
    try {
      const created = await api("/v1/jobs", { method: "POST", body });
      this.say(created.created
        ? `Job ${created.job_id} queued.`
        : `That commit already has job ${created.job_id}.`);
      this.turn(0);
    } catch (failure) {
      error.textContent = `Not enqueued: ${failure.message}`;
    }
  }

  async refresh() {
    clearTimeout(this.timer);
    this.timer = null;
    this.asked += 1;
    const asked = this.asked;
    let delay = null;
    try {
      const body = await api("/v1/jobs", { params: { repo: this.filter.value,
        status: this.statuses.value, limit: this.limit, offset: this.offset } });
      if (asked !== this.asked) return;
      const jobs = body.jobs || [];
      if (!jobs.length && this.offset > 0) { // the page emptied (jobs were deleted)
        this.turn(0);
        return;
      }
      this.next = body.next_offset ?? null;
      this.render(jobs);
      this.pager(jobs.length);
      if (jobs.some((job) => !TERMINAL.has(job.status))) delay = POLL_MS;
      const empty = this.statuses.value || this.filter.value
        ? "No jobs match these filters." : "No jobs yet.";
      if (!jobs.length) this.say(empty);
      else if (this.status.textContent.startsWith("No jobs")) this.say("");
    } catch (failure) {
      if (failure.status === 401 || asked !== this.asked) return;
      this.say(`Could not load the jobs: ${failure.message}`, true);
      delay = RETRY_MS;
    }
    if (this.active && delay !== null && this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.refresh();
      }, delay);
    }
  }

  pager(shown) {
    byId("jobs-pager").hidden = this.offset === 0 && this.next === null;
    const newer = byId("jobs-newer");
    const older = byId("jobs-older");
    newer.disabled = this.offset === 0;
    older.disabled = this.next === null;
    byId("jobs-page").textContent = shown
      ? `${this.offset + 1}–${this.offset + shown}${this.next === null ? "" : " and older"}` : "";
  }

  render(jobs) {
    const seen = new Set();
    const now = new Date();
    let at = 0;
    for (const job of jobs) {
      seen.add(job.job_id);
      let row = this.rows.get(job.job_id);
      if (!row) {
        row = this.row(job);
        this.rows.set(job.job_id, row);
      }
      for (const tr of [row.root, row.more]) {
        const here = this.list.children[at] || null;
        if (here !== tr) this.list.insertBefore(tr, here);
        at += 1;
      }
      this.update(row, job, now);
    }
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.root.remove();
        row.more.remove();
        this.rows.delete(id);
      }
    }
  }

  row(job) {
    const id = job.job_id;
    const cell = (cls) => h("td", { class: cls });
    const detailId = `job-${id}-details`;
    const row = {
      root: h("tr", { class: "job", "data-job-id": id }),
      more: h("tr", { class: "job-more", id: detailId, hidden: true }),
      state: h("span", { class: "job-state" }),
      overall: h("progress", { class: "overall", max: 100,
        "aria-label": `Progress of the job of ${job.repo}` }),
      percent: h("span", { class: "count" }),
      eta: h("span", { class: "eta" }),
      commit: cell("job-commit"),
      created: cell("job-created"),
      took: cell("job-took"),
      cancel: h("button", { type: "button", class: "danger cancel",
        "aria-label": `Cancel the job of ${job.repo} (${id})` }, "Cancel"),
      toggle: h("button", { type: "button", class: "secondary toggle", "aria-expanded": "false",
        "aria-controls": detailId, "aria-label": `Details of the job of ${job.repo} (${id})` },
      "Details"),
      fields: {},
      progress: {},
      errors: h("div", { class: "job-errors" }),
      waits: h("div", { class: "job-waits" }),
      hooks: h("div", { class: "job-hooks" }),
    };
    row.cancel.addEventListener("click", () => this.cancel(id, row.cancel));
    row.toggle.addEventListener("click", () => {
      const open = row.more.hidden;
      row.more.hidden = !open;
      row.toggle.setAttribute("aria-expanded", String(open));
    });
    row.root.append(
      h("th", { scope: "row", class: "job-repo" }, job.repo),
      h("td", { class: "job-status" }, row.state),
      h("td", { class: "job-progress" }, row.overall, " ", row.percent, " ", row.eta),
      row.commit, row.created, row.took,
      h("td", { class: "job-actions" }, row.toggle, row.cancel),
    );
    const field = (name, label) => {
      row.fields[name] = h("dd", {});
      return [h("dt", {}, label), row.fields[name]];
    };
    const meters = bars(job).map(([name, label]) => {
      const bar = h("progress", { id: `job-${id}-${name}`, max: 1 });
      row.progress[name] = { bar, text: h("span", { class: "count" }) };
      return h("div", { class: "meter" }, h("label", { for: bar.id }, label), bar,
        row.progress[name].text);
    });
    row.more.append(h("td", { colspan: COLUMNS },
      h("dl", { class: "job-fields" }, field("stage", "Stage"), field("source", "Source"),
        field("commit", "Commit"), field("started", "Started"), field("finished", "Finished"),
        field("id", "Job")),
      h("div", { class: "meters" }, meters),
      row.errors, row.waits, row.hooks));
    return row;
  }

  update(row, job, now = new Date()) {
    const terminal = TERMINAL.has(job.status);
    const was = row.root.dataset.status;
    if (terminal && was && !TERMINAL.has(was)) this.onFinished(job);
    const state = stateText(job);
    if (row.state.textContent !== state) row.state.textContent = state;
    row.state.title = job.status === "failed" && job.message ? job.message : "";
    row.root.dataset.status = job.status;
    row.root.dataset.stage = job.stage;
    row.cancel.hidden = terminal;
    const percent = Number(job.percent || 0);
    row.overall.value = percent;
    row.percent.textContent = `${percent.toFixed(0)} %`;
    row.eta.textContent = terminal || job.eta_s === null || job.eta_s === undefined
      ? "" : `ETA ${duration(job.eta_s)}`;
    row.commit.replaceChildren(job.commit
      ? h("code", { title: job.commit }, shortCommit(job.commit)) : "—");
    row.created.textContent = shortWhen(job.created_at);
    row.created.title = when(job.created_at);
    row.took.textContent = took(job, now);
    const f = row.fields;
    f.stage.textContent = job.stage;
    f.source.textContent = job.source || "—";
    f.commit.textContent = job.commit || "—";
    f.started.textContent = when(job.started_at);
    f.finished.textContent = when(job.finished_at);
    f.id.textContent = job.job_id;
    for (const [name, , count, total] of bars(job)) {
      const { bar, text } = row.progress[name];
      if (total > 0) {
        bar.max = total;
        bar.value = Math.min(count, total);
      } else if (terminal) {
        bar.max = 1;
        bar.value = job.status === "done" ? 1 : 0;
      } else {
        bar.removeAttribute("value"); // indeterminate until the count is known
      }
      text.textContent = `${count} / ${total}`;
    }
    this.details(row, job);
  }

  details(row, job) {
    const section = (title, items) => (items.length
      ? [h("h5", {}, title), h("ul", {}, items)] : []);
    row.errors.replaceChildren(...section(`Errors (${(job.errors || []).length})`,
      (job.errors || []).map((e) => h("li", { class: "error" },
        h("code", {}, e.path || "job"), `: ${e.message}`))));
    if (job.message && job.status === "failed") {
      row.errors.prepend(h("p", { class: "error" }, job.message));
    }
    row.waits.replaceChildren(...section("Waiting on",
      (job.waiting_on || []).map((w) => h("li", {},
        `${w.store}: ${w.reason} (until ${when(w.until)})`))));
    row.hooks.replaceChildren(...section("Webhook deliveries",
      (job.webhooks || []).map((w) => h("li", { class: `hook hook-${w.outcome}` },
        `${w.event} → ${w.url}: attempt ${w.attempt}, ${w.outcome}`
        + (w.status_code ? ` (HTTP ${w.status_code})` : "")
        + (w.error ? `, ${w.error}` : "") + `, ${w.duration_s} s`))));
  }

  async cancel(jobId, button) {
    button.disabled = true;
    try {
      const job = await api(`/v1/jobs/${encodeURIComponent(jobId)}`, { method: "DELETE" });
      this.say(`Job ${jobId}: ${job.status}.`);
      const row = this.rows.get(jobId);
      if (row) this.update(row, job);
    } catch (failure) {
      this.say(`Could not cancel job ${jobId}: ${failure.message}`, true);
    } finally {
      button.disabled = false;
    }
  }
}
