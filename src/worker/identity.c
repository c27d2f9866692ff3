#include "identity.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static int set_groups(nw_identity id, char *err, size_t errlen)
{
    gid_t gid = id.gid != (gid_t)-1 ? id.gid : getegid();
    /* Root's supplementary groups must never survive the drop. Only a
     * process that is not root may fail here (it has no root groups). */
    if (setgroups(1, &gid) < 0 && (errno != EPERM || geteuid() == 0)) {
        snprintf(err, errlen, "cannot set the supplementary groups to %u: %s", (unsigned)gid,
                 strerror(errno));
        return -1;
    }
    if (id.gid != (gid_t)-1 && setgid(id.gid) < 0) {
        snprintf(err, errlen, "cannot set group %u: %s", (unsigned)id.gid, strerror(errno));
        return -1;
    }
    return 0;
}

/* Empties the bounding set: a capability not in it can never be gained
 * again, by exec of a setuid or file-capability program either. Needs
 * CAP_SETPCAP; without it (a systemd unit's bounding set may leave it out)
 * the drop to a non-root uid still clears every capability the process
 * has, and no_new_privs keeps exec from adding any. */
static void drop_bounding_set(void)
{
    for (int cap = 0; cap < 64; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno == EINVAL)
            break; /* past the kernel's last capability */
}

int identity_drop(nw_identity id, char *err, size_t errlen)
{
    if (id.uid == (uid_t)-1 && id.gid == (gid_t)-1)
        return 0;
    if (set_groups(id, err, errlen) < 0)
        return -1;
    if (id.uid != (uid_t)-1) {
        if (id.uid != 0 && (geteuid() == 0 || getuid() == 0))
            drop_bounding_set();
        if (setresuid(id.uid, id.uid, id.uid) < 0) {
            snprintf(err, errlen, "cannot set user %u: %s", (unsigned)id.uid, strerror(errno));
            return -1;
        }
    }
    return 0;
}

int identity_suspend(nw_identity id, char *err, size_t errlen)
{
    if (geteuid() != 0 || id.uid == (uid_t)-1 || id.uid == 0)
        return 0;
    if (set_groups(id, err, errlen) < 0)
        return -1;
    if (setresuid(id.uid, id.uid, 0) < 0) {
        snprintf(err, errlen, "cannot set user %u: %s", (unsigned)id.uid, strerror(errno));
        return -1;
    }
    return 0;
}

int identity_chroot(const char *dir, char *err, size_t errlen)
{
    if (geteuid() != 0 && setresuid(0, 0, 0) < 0) {
        snprintf(err, errlen, "chroot: cannot take back root for %s: %s", dir, strerror(errno));
        return -1;
    }
    if (chroot(dir) < 0 || chdir("/") < 0) {
        snprintf(err, errlen, "chroot: cannot enter %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}
