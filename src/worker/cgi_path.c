/* cgi_path.c - whether a SCRIPT_FILENAME may run (cgi_path.h). */
#include "cgi_path.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int has_dotdot(const char *p)
{
    for (const char *s = p; (s = strstr(s, "..")); s += 2)
        if ((s == p || s[-1] == '/') && (s[2] == '/' || s[2] == 0))
            return 1;
    return 0;
}

static int inside(const char *path, char *const *roots, size_t nroots)
{
    for (size_t i = 0; i < nroots; i++) {
        size_t n = strlen(roots[i]);
        if (strncmp(path, roots[i], n) == 0 && (path[n] == '/' || (n == 1 && path[0] == '/')))
            return 1;
    }
    return 0;
}

int cgi_path_check(const char *sf, size_t sflen, char *const *roots, size_t nroots, char **out,
                   char *why, size_t whylen)
{
    *out = NULL;
    if (!sf || !*sf)
        return snprintf(why, whylen,
                        "no SCRIPT_FILENAME param (fastcgi_param SCRIPT_FILENAME "
                        "$document_root$fastcgi_script_name;)"),
               404;
    if (strlen(sf) != sflen)
        return snprintf(why, whylen, "SCRIPT_FILENAME holds a NUL byte"), 403;
    if (sf[0] != '/')
        return snprintf(why, whylen, "SCRIPT_FILENAME is not an absolute path"), 403;
    if (has_dotdot(sf))
        return snprintf(why, whylen, "SCRIPT_FILENAME has a '..' component"), 403;
    char *real = realpath(sf, NULL);
    if (!real) {
        int e = errno;
        snprintf(why, whylen, "%s", strerror(e));
        return e == ENOENT || e == ENOTDIR ? 404 : 403;
    }
    struct stat st;
    int status = 403;
    if (!inside(real, roots, nroots))
        snprintf(why, whylen, "it resolves to %s, outside every cgi_root", real);
    else if (stat(real, &st) < 0)
        snprintf(why, whylen, "%s: %s", real, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        snprintf(why, whylen, "%s is not a regular file", real);
    else if (st.st_mode & S_IWOTH)
        snprintf(why, whylen, "%s is writable by others", real);
    else if (access(real, X_OK) < 0)
        snprintf(why, whylen, "%s is not executable: %s", real, strerror(errno));
    else
        status = 0;
    if (status) {
        free(real);
        return status;
    }
    *out = real;
    return 0;
}
