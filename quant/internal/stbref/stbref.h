// The C side of package stbref (stb.c, scalar.c).
extern const int stbref_have;
unsigned char *stbref_load(const char *path, int *w, int *h);
unsigned char *stbref_load_scalar(const char *path, int *w, int *h);
const char *stbref_failure(void);
void stbref_free(void *p);
