// Follow a task journal live: the page holds the journal up to data-offset,
// this follows watch/{id}.events from there. EventSource reconnects by itself
// with Last-Event-ID (the byte offset after the last frame it got), so a
// restarted server resumes the stream with no line lost or doubled.
(function () {
  "use strict";
  var journal = document.getElementById("journal");
  if (!journal || journal.dataset.ended === "true" || !window.EventSource) return;
  var status = document.getElementById("watch-status");
  var final = document.getElementById("final-state");
  var state = document.getElementById("task-state");
  var offset = journal.dataset.offset;
  var source = null;

  function nearBottom() {
    return window.innerHeight + window.scrollY >= document.body.scrollHeight - 80;
  }

  function append(node, follow) {
    journal.appendChild(node);
    if (follow) window.scrollTo(0, document.body.scrollHeight);
  }

  function onLog(event) {
    var follow = nearBottom();
    var data = JSON.parse(event.data);
    var line = document.createElement("div");
    line.className = "log log-" + data.level.toLowerCase();
    var level = document.createElement("span");
    level.className = "level";
    level.textContent = data.level;
    var message = document.createElement("span");
    message.className = "message";
    message.textContent = data.message;
    line.append(level, " ", message);
    append(line, follow);
    offset = event.lastEventId;
  }

  function onOutput(event) {
    var follow = nearBottom();
    var text = JSON.parse(event.data);
    var last = journal.lastElementChild;
    if (last && last.tagName === "PRE") {
      last.textContent += text;
      if (follow) window.scrollTo(0, document.body.scrollHeight);
    } else {
      var pre = document.createElement("pre");
      pre.className = "output";
      pre.textContent = text;
      append(pre, follow);
    }
    offset = event.lastEventId;
  }

  function onEnd(event) {
    source.close();
    var data = JSON.parse(event.data);
    var message = data.message || (data.result === "success" ? "Task succeeded" : "Task failed");
    final.textContent = message;
    final.className = "final " + (message === "Task succeeded" ? "success" : "failed");
    final.hidden = false;
    var result = data.state === "finished" ? data.result
      : (message === "Task succeeded" ? "success" : "failed");
    state.textContent = "finished (" + result + ")";
    status.textContent = "";
    journal.dataset.ended = "true";
  }

  function connect() {
    var url = new URL(journal.dataset.eventsUrl, window.location.href);
    url.searchParams.set("from", offset);
    source = new EventSource(url);
    source.addEventListener("log", onLog);
    source.addEventListener("output", onOutput);
    source.addEventListener("end", onEnd);
    source.addEventListener("open", function () {
      status.textContent = "Following the task…";
    });
    source.addEventListener("error", function () {
      if (journal.dataset.ended === "true") return;
      status.textContent = "Connection lost, reconnecting…";
      if (source.readyState === EventSource.CLOSED) {
        // Refused by the server (restarting behind a proxy, say): start again from our offset.
        window.setTimeout(connect, 2000);
      }
    });
  }

  connect();
})();
