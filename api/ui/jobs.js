// The jobs dashboard: enqueue a repository, follow its jobs live (polled every second
// while one is not finished), see errors, waits and webhook deliveries, cancel.

import { api } from "./api.js";
import { byId, duration, h, when } from "./dom.js";

const POLL_MS = 1000;
const RETRY_MS = 3000;
const TERMINAL = new Set(["done", "failed", "cancelled"]);

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

export class JobsView {
  constructor() {
    this.form = byId("job-form");
    this.list = byId("jobs");
    this.status = byId("jobs-status");
    this.filter = byId("jobs-repo");
    this.cards = new Map();
    this.timer = null;
    this.active = false;
    this.onFinished = () => {};
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.enqueue();
    });
    this.filter.addEventListener("change", () => {
      this.list.replaceChildren();
      this.cards.clear();
      this.refresh();
    });
    byId("jobs-refresh").addEventListener("click", () => this.refresh());
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
      this.refresh();
    } catch (failure) {
      error.textContent = `Not enqueued: ${failure.message}`;
    }
  }

  async refresh() {
    clearTimeout(this.timer);
    this.timer = null;
    let delay = null;
    try {
      const body = await api("/v1/jobs", { params: { repo: this.filter.value, limit: 20 } });
      const jobs = body.jobs || [];
      this.render(jobs);
      if (jobs.some((job) => !TERMINAL.has(job.status))) delay = POLL_MS;
      if (!jobs.length) this.say("No jobs yet.");
    } catch (failure) {
      if (failure.status === 401) return;
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

  render(jobs) {
    const seen = new Set();
    jobs.forEach((job, index) => {
      seen.add(job.job_id);
      let card = this.cards.get(job.job_id);
      if (!card) {
        card = this.card(job);
        this.cards.set(job.job_id, card);
      }
      const here = this.list.children[index] || null;
      if (here !== card.root) this.list.insertBefore(card.root, here);
      this.update(card, job);
    });
    for (const [id, card] of this.cards) {
      if (!seen.has(id)) {
        card.root.remove();
        this.cards.delete(id);
      }
    }
  }

  card(job) {
    const id = job.job_id;
    const fields = {};
    const field = (name, label) => {
      fields[name] = h("dd", {});
      return [h("dt", {}, label), fields[name]];
    };
    const progress = {};
    const meters = bars(job).map(([name, label]) => {
      const bar = h("progress", { id: `job-${id}-${name}`, max: 1 });
      progress[name] = { bar, text: h("span", { class: "count" }) };
      return h("div", { class: "meter" }, h("label", { for: bar.id }, label), bar, progress[name].text);
    });
    const overall = h("progress", { id: `job-${id}-overall`, max: 100 });
    const cancel = h("button", { type: "button", class: "danger cancel",
      "aria-label": `Cancel the job of ${job.repo} (${id})` }, "Cancel");
    cancel.addEventListener("click", () => this.cancel(id, cancel));
    const card = {
      root: h("li", { class: "job card", "data-job-id": id }),
      state: h("span", { class: "job-state", "aria-live": "polite" }),
      fields, progress, overall, cancel,
      percent: h("span", { class: "count" }),
      errors: h("div", { class: "job-errors" }),
      waits: h("div", { class: "job-waits" }),
      hooks: h("div", { class: "job-hooks" }),
    };
    card.root.append(
      h("div", { class: "job-head" },
        h("h4", {}, job.repo), card.state, cancel),
      h("dl", { class: "job-fields" }, field("stage", "Stage"), field("eta", "ETA"),
        field("commit", "Commit"), field("source", "Source"), field("started", "Started"),
        field("finished", "Finished"), field("id", "Job")),
      h("div", { class: "meter meter-overall" },
        h("label", { for: overall.id }, "Overall"), overall, card.percent),
      h("div", { class: "meters" }, meters),
      card.errors, card.waits, card.hooks,
    );
    return card;
  }

  update(card, job) {
    const terminal = TERMINAL.has(job.status);
    const was = card.root.dataset.status;
    if (terminal && was && !TERMINAL.has(was)) this.onFinished(job);
    const state = `${job.status}${terminal ? "" : ` · ${job.stage}`}`;
    if (card.state.textContent !== state) card.state.textContent = state;
    card.root.dataset.status = job.status;
    card.root.dataset.stage = job.stage;
    card.cancel.hidden = terminal;
    const f = card.fields;
    f.stage.textContent = job.stage;
    f.eta.textContent = terminal ? "—" : duration(job.eta_s);
    f.commit.textContent = job.commit || "—";
    f.source.textContent = job.source || "—";
    f.started.textContent = when(job.started_at);
    f.finished.textContent = when(job.finished_at);
    f.id.textContent = job.job_id;
    const percent = Number(job.percent || 0);
    card.overall.value = percent;
    card.percent.textContent = `${percent.toFixed(1)} %`;
    for (const [name, , count, total] of bars(job)) {
      const { bar, text } = card.progress[name];
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
    this.details(card, job);
  }

  details(card, job) {
    const section = (title, items) => (items.length
      ? [h("h5", {}, title), h("ul", {}, items)] : []);
    card.errors.replaceChildren(...section(`Errors (${(job.errors || []).length})`,
      (job.errors || []).map((e) => h("li", { class: "error" },
        h("code", {}, e.path || "job"), `: ${e.message}`))));
    if (job.message && job.status === "failed") {
      card.errors.prepend(h("p", { class: "error" }, job.message));
    }
    card.waits.replaceChildren(...section("Waiting on",
      (job.waiting_on || []).map((w) => h("li", {},
        `${w.store}: ${w.reason} (until ${when(w.until)})`))));
    card.hooks.replaceChildren(...section("Webhook deliveries",
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
      const card = this.cards.get(jobId);
      if (card) this.update(card, job);
    } catch (failure) {
      this.say(`Could not cancel job ${jobId}: ${failure.message}`, true);
    } finally {
      button.disabled = false;
    }
  }
}
