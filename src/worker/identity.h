/* identity.h - who a worker (or an --exec program) runs as, and where.
 *
 * The master may be root; what it starts is not, unless allow_root said
 * so: the user and group of `user` / `group`, supplementary groups reduced
 * to that group, an empty capability bounding set, and (chroot) a jail. */
#ifndef NW_IDENTITY_H
#define NW_IDENTITY_H

#include <stddef.h>
#include <sys/types.h>

/* Privileges the worker drops to before loading the app; (uid_t)-1 = keep. */
typedef struct nw_identity {
    uid_t uid;
    gid_t gid;
} nw_identity;

/* Becomes id: the supplementary groups become id's group alone (setgroups
 * is never skipped when anything changes), then the group, then the user.
 * A root process dropping to another user first empties its capability
 * bounding set (when it may: CAP_SETPCAP), so nothing it later executes
 * can be given a capability back. 0, or -1 with the reason in err. main()
 * never leaves a uid without a gid (a numeric user with no passwd entry
 * needs `group`). */
int identity_drop(nw_identity id, char *err, size_t errlen);

/* For what must be done as the workers' user before the jail: groups and
 * gid as identity_drop, then the effective and real uid become id's while
 * root stays the saved uid, so identity_chroot can take it back. Nothing
 * to do when not root or no user. 0 or -1 (err). */
int identity_suspend(nw_identity id, char *err, size_t errlen);

/* chroot(dir) and chdir("/"), as root (taking back a suspended root).
 * 0 or -1 (err names dir). identity_drop must follow. */
int identity_chroot(const char *dir, char *err, size_t errlen);

#endif
