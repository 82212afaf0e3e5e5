//go:build stb && cgo

// stb_image with STBI_NO_SIMD; see stb.c.
#include <stdlib.h>
#include "stbref.h"

#if defined(__has_include)
#if __has_include(<stb/stb_image.h>)
#define STBREF_HAVE_STB 1
#endif
#endif

#ifdef STBREF_HAVE_STB
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_NO_SIMD
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#include <stb/stb_image.h>

unsigned char *stbref_load_scalar(const char *path, int *w, int *h) {
	int c;
	return stbi_load(path, w, h, &c, 3);
}
#else
unsigned char *stbref_load_scalar(const char *path, int *w, int *h) { return NULL; }
#endif
