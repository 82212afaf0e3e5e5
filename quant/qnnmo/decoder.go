package qnnmo

import "github.com/fpgadetector/pynq-agent/quant/imageio"

// ImageDecoder is the JPEG decoding QNN-MO-PYNQ's published results came from: its
// notebooks load images through darknet built without OpenCV, i.e. stb_image. Decoded
// that way dog.jpg gives the published car 86%, dog 86%, bicycle 78%; libjpeg's
// samples (a few levels apart on 7% of them) move bicycle to 83%. Callers that load
// images for a QNN-MO model should use imageio.LoadWith(path, ImageDecoder).
const ImageDecoder = imageio.STB
