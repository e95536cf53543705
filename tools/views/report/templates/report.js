/* The report's behaviour: sortable tables, epoch choice, the log's fault filter, flame graphs.
   Plain DOM and SVG; no library, no network. */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";

  /* ---- sortable tables: click (or Enter on) a header; again to reverse ---------------------- */
  function cellKey(row, column, numeric) {
    var value = row.cells[column].getAttribute("data-sort");
    if (!numeric) return value;
    try { return BigInt(value); } catch (e) { return BigInt(0); }
  }

  function sortTable(table, column) {
    var th = table.tHead.rows[0].cells[column];
    var numeric = th.getAttribute("data-numeric") === "1";
    var current = th.getAttribute("aria-sort");
    // Numbers largest first, names smallest first; the same header again reverses.
    var descending = current ? current === "ascending" : numeric;
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).map(function (row, i) {
      return { row: row, key: cellKey(row, column, numeric), i: i };
    });
    rows.sort(function (a, b) {
      var order = a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
      if (descending) order = -order;
      return order || a.i - b.i;
    });
    rows.forEach(function (r) { body.appendChild(r.row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) { cell.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }

  document.querySelectorAll("table.sortable").forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      th.addEventListener("click", function () { sortTable(table, column); });
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") sortTable(table, column); });
    });
  });

  /* ---- an aggregate's epochs ---------------------------------------------------------------- */
  document.querySelectorAll("select.epoch-select").forEach(function (select) {
    select.addEventListener("change", function () {
      var section = select.closest(".aggregate");
      section.querySelectorAll(".epoch").forEach(function (div) {
        div.hidden = div.getAttribute("data-epoch") !== select.value;
      });
    });
  });

  /* ---- the log: faults only --------------------------------------------------------------- */
  document.querySelectorAll("input.faults-only").forEach(function (box) {
    box.addEventListener("change", function () {
      document.querySelectorAll("ol.log").forEach(function (log) { log.classList.toggle("faults-only", box.checked); });
    });
  });

  /* ---- a link into a closed <details> (a VM's tables) opens it ------------------------------ */
  function reveal() {
    var target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    for (var n = target; n; n = n.parentElement) if (n.tagName === "DETAILS") n.open = true;
    if (target) target.scrollIntoView();
  }
  window.addEventListener("hashchange", reveal);
  reveal();

  /* ---- flame graphs ------------------------------------------------------------------------- */
  var FRAME_H = 17, CHAR_W = 6.7, MIN_W = 0.3;

  function hash(text) {
    var h = 2166136261;
    for (var i = 0; i < text.length; i++) { h ^= text.charCodeAt(i); h = Math.imul(h, 16777619); }
    return (h >>> 0) / 4294967295;
  }

  function color(name) {
    // Warm colours, steady per function name: the same function has the same colour everywhere.
    var a = hash(name), b = hash(name + "\u0001");
    return "rgb(" + Math.round(200 + 55 * a) + "," + Math.round(70 + 150 * b) + "," + Math.round(40 + 40 * a) + ")";
  }

  function index(tree) {
    // Each node's parent, depth and start (in samples from the left of the whole graph).
    var nodes = [], depth = 0;
    (function walk(node, parent, start, d) {
      node.parent = parent; node.depth = d; node.start = start;
      nodes.push(node);
      if (d > depth) depth = d;
      var x = start;
      node.c.forEach(function (child) { walk(child, node, x, d + 1); x += child.v; });
    })(tree, null, 0, 0);
    return { nodes: nodes, depth: depth };
  }

  function matcher(text) {
    if (!text) return null;
    var re = /^\/(.*)\/$/.exec(text);
    if (re) {
      try { var r = new RegExp(re[1]); return function (name) { return r.test(name); }; }
      catch (e) { return null; }
    }
    var lower = text.toLowerCase();
    return function (name) { return name.toLowerCase().indexOf(lower) >= 0; };
  }

  function FlameGraph(root) {
    this.root = root;
    this.tree = JSON.parse(root.querySelector(".flame-data").textContent);
    var info = index(this.tree);
    this.nodes = info.nodes;
    this.depth = info.depth;
    this.canvas = root.querySelector(".flame-canvas");
    this.detail = root.querySelector(".flame-detail");
    this.matched = root.querySelector(".flame-matched");
    this.search = root.querySelector(".flame-search");
    this.focus = this.tree;
    this.match = null;
    var self = this;
    root.querySelector(".flame-reset").addEventListener("click", function () { self.zoom(self.tree); });
    this.search.addEventListener("input", function () { self.match = matcher(self.search.value); self.draw(); });
    root.addEventListener("keydown", function (e) { if (e.key === "Escape") self.zoom(self.tree); });
    this.draw();
  }

  FlameGraph.prototype.zoom = function (node) { this.focus = node; this.draw(); };

  FlameGraph.prototype.describe = function (node) {
    var all = this.tree.v, focus = this.focus.v;
    var text = node.n + ": " + node.v.toLocaleString() + " sample" + (node.v === 1 ? "" : "s") +
      " (" + (100 * node.v / all).toFixed(1) + "% of all";
    if (this.focus !== this.tree && isWithin(node, this.focus)) text += ", " + (100 * node.v / focus).toFixed(1) + "% of the zoomed frame";
    var self = node.c.reduce(function (left, child) { return left - child.v; }, node.v);
    return text + "; self " + self.toLocaleString() + ")";
  };

  function isWithin(node, ancestor) {
    for (var n = node; n; n = n.parent) if (n === ancestor) return true;
    return false;
  }

  FlameGraph.prototype.draw = function () {
    var width = this.canvas.clientWidth || 1000;
    var height = (this.depth + 1) * FRAME_H + 2;
    var focus = this.focus, scale = width / focus.v;
    // The focused frame spans the width; so do its ancestors (greyed); only its subtree is drawn below.
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    svg.setAttribute("viewBox", "0 0 " + width + " " + height);
    svg.setAttribute("role", "img");
    var self = this, matchedTotal = 0, match = this.match;
    this.nodes.forEach(function (node) {
      var x, w, ancestor = false;
      if (isWithin(node, focus)) {
        x = (node.start - focus.start) * scale;
        w = node.v * scale;
      } else if (isWithin(focus, node)) {
        x = 0; w = width; ancestor = true;
      } else {
        return;
      }
      if (w < MIN_W) return;
      var matches = match !== null && node.parent !== null && match(node.n);
      if (matches && !hasMatchingAncestor(node, match) && isWithin(node, focus)) matchedTotal += node.v;
      var g = document.createElementNS(SVG, "g");
      g.setAttribute("class", "frame" + (ancestor ? " ancestor" : "") + (matches ? " match" : ""));
      g.setAttribute("data-name", node.n);
      g.setAttribute("data-count", node.v);
      g.setAttribute("data-depth", node.depth);
      var y = height - (node.depth + 1) * FRAME_H;
      var rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", x.toFixed(2));
      rect.setAttribute("y", y);
      rect.setAttribute("width", Math.max(w, 0.5).toFixed(2));
      rect.setAttribute("height", FRAME_H - 1);
      rect.setAttribute("fill", node.parent === null ? "#d7d2c8" : color(node.n));
      var title = document.createElementNS(SVG, "title");
      title.textContent = self.describe(node);
      g.appendChild(title);
      g.appendChild(rect);
      var room = Math.floor((w - 6) / CHAR_W);
      if (room >= 3) {
        var label = document.createElementNS(SVG, "text");
        label.setAttribute("x", (x + 3).toFixed(2));
        label.setAttribute("y", y + FRAME_H - 5);
        label.textContent = node.n.length <= room ? node.n : node.n.slice(0, room - 2) + "..";
        g.appendChild(label);
      }
      // A frame zooms in; the zoomed frame again (or a greyed ancestor) zooms out to its parent (that ancestor).
      g.addEventListener("click", function () { self.zoom(node === focus && node.parent ? node.parent : node); });
      g.addEventListener("mouseenter", function () { self.detail.textContent = self.describe(node); });
      svg.appendChild(g);
    });
    this.canvas.replaceChildren(svg);
    this.root.setAttribute("data-focus", focus.n);
    if (match === null) {
      this.matched.textContent = "";
    } else {
      this.matched.textContent = "matched " + matchedTotal.toLocaleString() + " of " + focus.v.toLocaleString() +
        " samples (" + (100 * matchedTotal / focus.v).toFixed(1) + "%)";
    }
  };

  function hasMatchingAncestor(node, match) {
    for (var n = node.parent; n && n.parent; n = n.parent) if (match(n.n)) return true;
    return false;
  }

  var graphs = [];
  document.querySelectorAll(".flame").forEach(function (root) { root.tabIndex = -1; graphs.push(new FlameGraph(root)); });
  window.addEventListener("resize", function () { graphs.forEach(function (g) { g.draw(); }); });
  window.vprobeFlameGraphs = graphs;
})();
