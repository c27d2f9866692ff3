/* cgi_path.h - whether the program a SCRIPT_FILENAME names may run
 * (--cgi-root): the checks fcgiwrap leaves to the operator. */
#ifndef NW_CGI_PATH_H
#define NW_CGI_PATH_H

#include <stddef.h>

/* Checks sf, sflen bytes long (a NUL before its end is refused), against
 * roots (directories already resolved with realpath). It must be an
 * absolute path with no ".." component that resolves, symlinks followed,
 * to a regular file inside one of the roots, executable by this process
 * and not writable by others. Returns 0 and sets *out to the resolved path
 * (malloc'd, the caller frees it), or returns the status to answer, 404 (no
 * such file; also for sf NULL or empty) or 403, with the reason in why. */
int cgi_path_check(const char *sf, size_t sflen, char *const *roots, size_t nroots, char **out,
                   char *why, size_t whylen);

#endif
