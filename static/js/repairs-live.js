// Live regions of the repairs pages (the staff queue, a ticket's timeline).
//
// An element with data-live-url is fetched again every data-live-interval seconds and its content
// replaced by the answer (the server renders just that part for ?fragment=1). Only that element
// changes: no page reload, the filters and the scroll position stay. A refresh is skipped while
// the tab is hidden, or while the person is typing, choosing or has a form open inside the region.
//
// Forms marked data-live-submit inside a region are posted with fetch; the server answers with a
// redirect to the page, and the region and the messages are taken from that page.
//
// Progressive enhancement: without this file every form posts normally and redirects back.
(() => {
  "use strict";
  const regions = Array.from(document.querySelectorAll("[data-live-url]"));
  if (!regions.length || !window.fetch || !window.DOMParser) return;

  const lastHtml = new WeakMap();
  const stopped = new WeakSet();

  function busy(region) {
    const active = document.activeElement;
    if (active && region.contains(active) && active.matches("input, select, textarea")) return true;
    if (region.querySelector("details[open]")) return true;
    return region.dataset.dirty === "1";
  }

  function replace(region, html) {
    if (lastHtml.get(region) === html) return;
    region.innerHTML = html;
    lastHtml.set(region, html);
    delete region.dataset.dirty;
  }

  async function refresh(region) {
    if (stopped.has(region) || document.hidden || busy(region) || region.dataset.loading) return;
    region.dataset.loading = "1";
    try {
      const response = await fetch(region.dataset.liveUrl, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { "X-Requested-With": "fetch" },
      });
      if (response.redirected || response.status === 403 || response.status === 404) {
        stopped.add(region); // signed out or no longer allowed: stop asking
        return;
      }
      if (response.ok) {
        // Read the body first: the person may start choosing while it arrives.
        const html = await response.text();
        if (!busy(region)) replace(region, html);
      }
    } catch (error) {
      // Offline for a moment: the next tick tries again.
    } finally {
      delete region.dataset.loading;
    }
  }

  function showMessages(doc) {
    const fresh = doc.querySelector(".messages");
    const current = document.querySelector(".messages");
    if (current) current.remove();
    if (fresh) document.querySelector("main").prepend(document.importNode(fresh, true));
  }

  document.addEventListener("input", (event) => {
    const region = event.target.closest && event.target.closest("[data-live-url]");
    if (region) region.dataset.dirty = "1";
  });

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-live-submit")) return;
    const region = form.closest("[data-live-url]");
    if (!region || !region.id) return;
    event.preventDefault();
    form.querySelectorAll("button").forEach((button) => { button.disabled = true; });
    // getAttribute: the forms have an input named "action", which shadows form.action.
    const url = form.getAttribute("action") || window.location.href;
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch" },
      });
    } catch (error) {
      HTMLFormElement.prototype.submit.call(form); // not sent: post it the plain way
      return;
    }
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = doc.getElementById(region.id);
    if (!fresh) {
      window.location.assign(response.url); // sent, but an unexpected page: show it
      return;
    }
    delete region.dataset.dirty;
    replace(region, fresh.innerHTML);
    showMessages(doc);
  });

  regions.forEach((region) => {
    lastHtml.set(region, region.innerHTML);
    const seconds = Math.max(5, parseInt(region.dataset.liveInterval, 10) || 15);
    window.setInterval(() => refresh(region), seconds * 1000);
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) regions.forEach(refresh);
  });
})();
