// Show <time datetime="..."> values (rendered in UTC) in the reader's time zone. The page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var nodes = document.querySelectorAll("time[datetime]");
  for (var i = 0; i < nodes.length; i++) {
    var value = nodes[i].getAttribute("datetime");
    if (value.length <= 10) continue; // a date, not a moment
    var moment = new Date(value);
    if (isNaN(moment.getTime())) continue;
    nodes[i].title = nodes[i].textContent;
    nodes[i].textContent = moment.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  }
});
