// Package label owns pseudo-labelling: turning unlabeled photos into a darknet dataset
// for a target class list (e.g. just "chair") from the boxes of one or more teacher
// models, with a contact sheet for review and a rejection list that the next run
// honours. `pynqctl dataset label` is its command line.
//
// Teachers are darknet float models (cfg + weights) or QNN-MO parameter directories,
// each with its own names file, score threshold and mapping of its classes onto the
// target's (several teacher classes may map to one target class).
//
// Fusion. Per image and target class, the teachers' boxes are fused by weighted boxes
// fusion (WBF): boxes are clustered across teachers by IoU, each cluster becomes one box
// whose corners are the score-weighted mean of its members, and whose score is the mean
// over all teachers of each teacher's best score in the cluster (0 for a teacher that
// has no box there). WBF rather than NMS across teachers because:
//   - NMS keeps one teacher's box and throws the others' away; when teachers agree on an
//     object but disagree by a few pixels, their average localizes better than any one
//     of them (errors of independent models partly cancel);
//   - the mean over teachers is a vote: a box that only one of two teachers sees gets
//     half its score, so one teacher's false positive rarely passes the acceptance
//     threshold, while objects both see keep their score.
//
// With one teacher, fusion reduces to that teacher's NMS'd boxes with their scores.
//
// Acceptance. Fused boxes scoring at least Options.Thresh become labels. An image with
// a fused box between Options.Uncertain and Options.Thresh is "uncertain": there may be
// a target object the labels would miss, which training would then learn as background,
// so such images are left out unless Options.KeepUncertain is set. Images without any
// box are kept with an empty label file: they are the negatives.
package label
