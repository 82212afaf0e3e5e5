package label

import (
	"bytes"
	"fmt"
	"html/template"
	"image/jpeg"
	"net/url"
	"os"

	"github.com/fpgadetector/pynq-agent/quant/imageio"
)

// thumbSide is the longest side of a contact-sheet thumbnail.
const thumbSide = 256

// writeThumb writes img scaled to thumbSide with its boxes drawn, numbered as in
// labels.json; "?" marks uncertain boxes and "x" rejected ones.
func writeThumb(path string, img *imageio.Image, boxes []boxRecord, classes int) error {
	scale := min(1, float32(thumbSide)/float32(max(img.W, img.H)))
	w, h := max(2, int(float32(img.W)*scale+0.5)), max(2, int(float32(img.H)*scale+0.5))
	small := img
	if w != img.W || h != img.H {
		small = imageio.Resize(img, w, h)
	}
	sx, sy := float32(w)/float32(img.W), float32(h)/float32(img.H)
	var labels []imageio.Label
	for _, b := range boxes {
		text := fmt.Sprintf("%d %s %.0f%%", b.Index, b.Class, b.Score*100)
		switch b.Status {
		case StatusUncertain:
			text += " ?"
		case StatusRejected:
			text += " x"
		}
		r := b.rect
		labels = append(labels, imageio.Label{Box: [4]float32{r[0] * sx, r[1] * sy, r[2] * sx, r[3] * sy},
			Text: text, Class: b.class, Classes: classes})
	}
	rgba := small.ToRGBA()
	imageio.Draw(rgba, labels)
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, rgba, &jpeg.Options{Quality: 80}); err != nil {
		return fmt.Errorf("thumbnail %s: %w", path, err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("thumbnail: %w", err)
	}
	return nil
}

// card is one image of the contact sheet.
type card struct {
	ID, Note string
	Status   Status
	Thumb    template.URL
}

// writeSheet writes the contact sheet: a card per image and a script that turns the
// ticked cards into a rejection list to copy or download. Entries of the previous list
// that are not ticks on a card (box rejections, unknown ids) are carried over.
func writeSheet(path string, recs []imageRecord, res *Result, rej *Rejections) error {
	data := struct {
		*Result
		Cards []card
		Carry []string
	}{Result: res, Carry: []string{}}
	onCard := map[string]bool{}
	for _, rec := range recs {
		onCard[rec.ID] = true
		uncertain := 0
		for _, b := range rec.Boxes {
			if b.Status == StatusUncertain {
				uncertain++
			}
		}
		data.Cards = append(data.Cards, card{ID: rec.ID, Status: rec.Status,
			Note:  fmt.Sprintf("%s, %d boxes, %d uncertain", rec.Status, len(rec.accepted()), uncertain),
			Thumb: template.URL(thumbsDir + "/" + url.PathEscape(rec.ID) + ".jpg")})
	}
	for _, e := range rej.entries() {
		if e.box >= 0 || !onCard[e.id] {
			data.Carry = append(data.Carry, e.String())
		}
	}
	var buf bytes.Buffer
	if err := sheetTemplate.Execute(&buf, data); err != nil {
		return fmt.Errorf("contact sheet: %w", err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("contact sheet: %w", err)
	}
	return nil
}

var sheetTemplate = template.Must(template.New("sheet").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Pseudo-labels: {{.Images}} images</title>
<style>
body { font: 14px sans-serif; margin: 1em; background: #fafafa; }
#tools { position: sticky; top: 0; background: #fafafa; padding: .5em 0; border-bottom: 1px solid #ccc; }
#tools textarea { width: 100%; font-family: monospace; }
.grid { display: flex; flex-wrap: wrap; gap: 8px; margin-top: 1em; }
.card { width: 264px; border: 3px solid #8c8; border-radius: 4px; padding: 4px; background: #fff; }
.card img { display: block; max-width: 256px; max-height: 256px; margin: auto; }
.card label { display: block; font-family: monospace; word-break: break-all; margin-top: 4px; }
.card.uncertain { border-color: #e0a000; }
.card.rejected { border-color: #888; }
.card.ticked { border-color: #c00; background: #fee; }
</style>
</head>
<body>
<h1>Pseudo-labels</h1>
<p>{{.Images}} images: {{.Kept}} kept ({{.Negatives}} without boxes), {{.Uncertain}} uncertain, {{.Rejected}} rejected.
Boxes are numbered as in labels.json; "?" marks an uncertain box, "x" a rejected one.
Tick the images whose labels are wrong, then copy or download the rejection list and give it to the next run
with --reject (a line "ID N" rejects only box N of image ID).</p>
<div id="tools">
<button id="copy">Copy rejection list</button>
<button id="save">Download rejections.txt</button>
<span id="count"></span>
<textarea id="list" rows="4" readonly></textarea>
</div>
<div class="grid">
{{range .Cards}}<div class="card {{.Status}}"><img src="{{.Thumb}}" alt="{{.ID}}" loading="lazy"><label><input type="checkbox" value="{{.ID}}"{{if eq .Status "rejected"}} checked{{end}}> {{.ID}}</label><div>{{.Note}}</div></div>
{{end}}</div>
<script>
"use strict";
const carry = {{.Carry}};
const ticks = [...document.querySelectorAll(".card input")];
const listText = () => ["# rejection list for pynqctl dataset label --reject",
  ...ticks.filter(t => t.checked).map(t => t.value), ...carry].join("\n") + "\n";
function update() {
  for (const t of ticks) t.closest(".card").classList.toggle("ticked", t.checked);
  document.getElementById("count").textContent = ticks.filter(t => t.checked).length + " ticked";
  document.getElementById("list").value = listText();
}
document.addEventListener("change", update);
document.getElementById("copy").onclick = () => {
  const area = document.getElementById("list");
  const fallback = () => { area.select(); document.execCommand("copy"); };
  if (navigator.clipboard) navigator.clipboard.writeText(area.value).catch(fallback); else fallback();
};
document.getElementById("save").onclick = () => {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([listText()], {type: "text/plain"}));
  a.download = "rejections.txt";
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
};
update();
</script>
</body>
</html>
`))
