// Package stbref decodes images with stb_image (Debian libstb-dev), the decoder of
// darknet builds without OpenCV, which QNN-MO-PYNQ's published Tinier-YOLO results came
// from. It is a test reference for imageio's STB mode and the QNN acceptance tests: it
// builds only with the stb build tag and cgo (go test -tags stb), and is empty
// otherwise.
package stbref
