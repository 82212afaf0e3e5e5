//go:build stb && cgo

// Two private copies of stb_image (all functions static): the default build, which
// uses SSE2 kernels on x86, and one with STBI_NO_SIMD, the plain C an ARM build of
// darknet runs. Without the header every load fails and stbref_have is 0.
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
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#include <stb/stb_image.h>

const int stbref_have = 1;

unsigned char *stbref_load(const char *path, int *w, int *h) {
	int c;
	return stbi_load(path, w, h, &c, 3);
}

const char *stbref_failure(void) { return stbi_failure_reason(); }

void stbref_free(void *p) { stbi_image_free(p); }
#else
const int stbref_have = 0;

unsigned char *stbref_load(const char *path, int *w, int *h) { return NULL; }

const char *stbref_failure(void) { return "stb/stb_image.h not installed (apt-get install libstb-dev)"; }

void stbref_free(void *p) { free(p); }
#endif
