/* Draws the dashboards' trend charts with the vendored Chart.js (static/vendor/chartjs/).
   The data comes from a json_script element named by data-dashboard-charts; every number is
   also in the table beside the chart, so nothing is lost without JavaScript. */
(function () {
  "use strict";
  if (typeof window.Chart === "undefined") return;
  document.querySelectorAll("[data-dashboard-charts]").forEach(function (box) {
    var source = document.getElementById(box.getAttribute("data-dashboard-charts"));
    if (!source) return;
    var data = JSON.parse(source.textContent);
    var combined = box.hasAttribute("data-combined");
    function options(percent) {
      return {
        responsive: true,
        animation: false,
        spanGaps: false,
        plugins: { legend: { display: combined } },
        scales: { y: percent ? { min: 0, max: 100, ticks: { callback: function (v) { return v + "%"; } } } : { beginAtZero: true } }
      };
    }
    box.querySelectorAll("canvas[data-figure]").forEach(function (canvas) {
      var key = canvas.getAttribute("data-figure");
      var figures = combined ? data.figures : data.figures.filter(function (f) { return f.key === key; });
      if (!figures.length) return;
      new window.Chart(canvas, {
        type: "line",
        data: {
          labels: data.labels,
          datasets: figures.map(function (f) { return { label: f.label, data: f.values, tension: 0.2 }; })
        },
        options: options(figures[0].percent)
      });
    });
  });
})();
