// Times are sent in UTC (<time datetime="...">); show them in the reader's time zone.
document.querySelectorAll("time[datetime]").forEach(function (element) {
  var date = new Date(element.getAttribute("datetime"));
  if (!isNaN(date)) {
    element.title = element.getAttribute("datetime");
    element.textContent = date.toLocaleString();
  }
});
