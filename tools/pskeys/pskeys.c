/*  =========================================================================
    pskeys - CURVE key pairs for psbroker and its clients

    `pskeys new NAME` writes NAME.key (the public certificate: give it to
    the other side, e.g. into the broker's --allow-keys folder, or to the
    workers as --broker-key) and NAME.key_secret (both keys, mode 0600:
    stays on the machine that uses it). `pskeys show FILE` prints what a
    certificate holds, never the secret key itself. The files are czmq's
    zcert format (ZPL text), which zcert and zcertstore read, so the broker
    loads them as they are; zcert makes the keys with libzmq's
    zmq_curve_keypair (libsodium's random numbers).

    Exit status: 0, 1 when a file cannot be written or read, 2 for a bad
    command line.
    ========================================================================= */

#include "ps_cli.h"

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void
s_usage (FILE *out)
{
    fprintf (out,
             "Usage: pskeys new NAME [--dir DIR] [--force]\n"
             "  or:  pskeys show FILE\n"
             "\n"
             "Make and inspect CURVE key pairs for psbroker, psworker, pstap and psbench.\n"
             "\n"
             "  new NAME      write DIR/NAME.key (public certificate) and DIR/NAME.key_secret\n"
             "                (secret, mode 0600); refuses to overwrite either\n"
             "  show FILE     print the public key of a certificate, and whether it holds\n"
             "                a secret key (which is never printed)\n"
             "  -d, --dir DIR  where new writes (default: the current folder; made if\n"
             "                missing, mode 0700)\n"
             "  -f, --force   let new overwrite an existing pair\n"
             "  -h, --help    show this help\n"
             "  -V, --version show the version\n"
             "\n"
             "A job with keys (docs/security.md):\n"
             "  pskeys new broker                      # on the broker's host\n"
             "  pskeys new worker1 --dir clients       # one per worker (or one shared)\n"
             "  psbroker --port 5555 --curve-secret broker.key_secret --allow-keys clients\n"
             "  psworker --broker tcp://HOST:5555 --curve-secret clients/worker1.key_secret \\\n"
             "      --broker-key broker.key ...\n"
             "Copy each NAME.key_secret to its machine only; the .key files are public.\n");
}

//  A name is one plain file name: no folder, no leading dot
static bool
s_plain_name (const char *name)
{
    return *name && *name != '.' && !strchr (name, '/') && strlen (name) < 200;
}

static int
s_new (const char *name, const char *dir, bool force)
{
    if (!s_plain_name (name)) {
        fprintf (stderr,
                 "pskeys: '%s' is not a plain name (no '/', no leading '.'); use --dir for the "
                 "folder\n",
                 name);
        return 2;
    }
    if (mkdir (dir, 0700) != 0 && errno != EEXIST) {
        fprintf (stderr, "pskeys: cannot make the folder %s: %s\n", dir, strerror (errno));
        return 1;
    }
    char public_file[PATH_MAX], secret_file[PATH_MAX];
    snprintf (public_file, sizeof public_file, "%s/%s.key", dir, name);
    snprintf (secret_file, sizeof secret_file, "%s/%s.key_secret", dir, name);
    if (!force && (access (public_file, F_OK) == 0 || access (secret_file, F_OK) == 0)) {
        fprintf (stderr,
                 "pskeys: %s or %s exists already (--force overwrites: the old keys "
                 "are then lost)\n",
                 public_file, secret_file);
        return 1;
    }
    zcert_t *cert = zcert_new ();
    if (!cert) {
        fprintf (stderr, "pskeys: cannot make a key pair (is libzmq built with CURVE?)\n");
        return 1;
    }
    zcert_set_meta (cert, "name", "%s", name);
    zcert_set_meta (cert, "made-by", "pskeys %s", PSMQ_VERSION);
    //  The secret first, private from its creation (zcert_save_secret
    //  writes it with the process's private file mode); then its mode is
    //  checked rather than trusted
    unlink (secret_file);
    int rc = zcert_save_secret (cert, secret_file);
    if (rc == 0)
        rc = chmod (secret_file, 0600);
    if (rc == 0)
        rc = zcert_save_public (cert, public_file);
    zcert_destroy (&cert);
    if (rc != 0) {
        fprintf (stderr, "pskeys: cannot write %s or %s: %s\n", public_file, secret_file,
                 strerror (errno));
        return 1;
    }
    printf ("pskeys: wrote %s (public) and %s (secret, mode 0600)\n", public_file, secret_file);
    return 0;
}

static int
s_show (const char *file)
{
    if (access (file, R_OK) != 0) {
        fprintf (stderr, "pskeys: cannot read %s: %s\n", file, strerror (errno));
        return 1;
    }
    //  zcert_load reads FILE_secret first when it exists: load the file
    //  itself to say what it holds
    zconfig_t *root = zconfig_load (file);
    const char *public_key = root ? zconfig_get (root, "curve/public-key", NULL) : NULL;
    const char *secret_key = root ? zconfig_get (root, "curve/secret-key", NULL) : NULL;
    uint8_t key[32];
    if (!public_key || strlen (public_key) != 40 || !zmq_z85_decode (key, public_key)) {
        fprintf (stderr, "pskeys: %s is not a certificate (make one with: pskeys new NAME)\n",
                 file);
        zconfig_destroy (&root);
        return 1;
    }
    printf ("file: %s\n", file);
    printf ("public-key: %s\n", public_key);
    printf ("secret-key: %s\n", secret_key && strlen (secret_key) == 40
                                    ? "present (not shown; keep this file private)"
                                    : "absent (a public certificate)");
    const char *name = zconfig_get (root, "metadata/name", NULL);
    if (name)
        printf ("name: %s\n", name);
    struct stat info;
    if (secret_key && stat (file, &info) == 0 && (info.st_mode & 077))
        printf ("warning: %s holds a secret key and other users may read it (mode %03o): "
                "chmod 600 it\n",
                file, (unsigned)(info.st_mode & 0777));
    zconfig_destroy (&root);
    return 0;
}

int
main (int argc, char *argv[])
{
    static const struct option options[] = {{"dir", required_argument, 0, 'd'},
                                            {"force", no_argument, 0, 'f'},
                                            {"help", no_argument, 0, 'h'},
                                            {"version", no_argument, 0, 'V'},
                                            {0, 0, 0, 0}};
    const char *dir = ".";
    bool force = false;
    int opt;
    while ((opt = getopt_long (argc, argv, "d:fhV", options, NULL)) != -1) {
        switch (opt) {
        case 'd':
            if (!*optarg || (optarg[0] == '-' && optarg[1])) {
                fprintf (stderr, "pskeys: --dir '%s' is not a folder name\n", optarg);
                return 2;
            }
            dir = optarg;
            break;
        case 'f': force = true; break;
        case 'h': s_usage (stdout); return 0;
        case 'V': ps_cli_version ("pskeys"); return 0;
        default: s_usage (stderr); return 2;
        }
    }
    int left = argc - optind;
    if (left == 2 && streq (argv[optind], "new"))
        return s_new (argv[optind + 1], dir, force);
    if (left == 2 && streq (argv[optind], "show"))
        return s_show (argv[optind + 1]);
    if (left == 0)
        fprintf (stderr, "pskeys: a command is required: new NAME or show FILE (see --help)\n");
    else
        fprintf (stderr, "pskeys: unknown command line '%s%s' (see --help)\n", argv[optind],
                 left > 1 ? " ..." : "");
    return 2;
}
