// Package darknet owns darknet model import and export: the .cfg parser (pjreddie's and
// AlexeyAB's dialects, with darknet's defaults and aliases), the .weights reader and
// writer, and a cfg writer, all to and from the quant model IR. Parsers report file:line
// (cfg) or byte counts (weights), bound sizes, and never panic on bad input.
package darknet
