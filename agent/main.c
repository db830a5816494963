/* SPDX-License-Identifier: MIT */
/* aks-ssh-access: makes a node's SSH access match what Azure IMDS says. See README.md and aks-ssh-access(8). */

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "cmd/cmd.h"
#include "log.h"
#include "macro.h"

static void help(void) {
        printf("Usage:\n"
               "  aks-ssh-access apply     [--dry-run] [--json] [--root DIR] [--imds-url URL | --imds-file FILE|-] [--config FILE]\n"
               "  aks-ssh-access status    [--json] [--root DIR]\n"
               "  aks-ssh-access verify    [--json] [--repair] [--root DIR]\n"
               "  aks-ssh-access show-imds [--json] [--root DIR] [--imds-url URL | --imds-file FILE|-] [--config FILE]\n"
               "  aks-ssh-access --help | --version\n"
               "\n"
               "Reads the node's SSH access mode (tag aks-managed-ssh-access: Disabled, LocalUser, EntraId) and the\n"
               "admin user's public keys from Azure IMDS, and makes the node match: the managed block in the admin's\n"
               "authorized_keys, and sshd's units (masked for Disabled).\n"
               "\n"
               "  apply      fetch, validate, reconcile, record\n"
               "  status     the applied mode, admin user, managed keys, units, last apply, in sync or not\n"
               "  verify     exit 0 in sync, 1 drift, 2 unknown; one line on stdout\n"
               "  show-imds  fetch and validate only\n"
               "\n"
               "  --dry-run       print the plan, change nothing (no lock taken)\n"
               "  --repair        verify: on drift, re-assert the last applied state (no IMDS fetch)\n"
               "  --json          machine-readable output\n"
               "  --root DIR      work on an image tree offline (no running systemd)\n"
               "  --imds-url URL  fetch from URL instead of the configured IMDS endpoint\n"
               "  --imds-file F   read the document from F (- for stdin) instead of IMDS\n"
               "  --config FILE   settings on top of /etc/aks-ssh-access.conf and its conf.d\n"
               "\n"
               "Exit codes of apply: 0 ok, 64 usage, 65 invalid document/entries, 66 --imds-file unreadable,\n"
               "67 admin user missing, 69 IMDS unavailable, 70 internal, 73 cannot create, 74 I/O error,\n"
               "75 another run holds the lock, 77 unsafe path, 78 sshd config check failed.\n");
}

static int usage_error(const char *fmt, const char *arg) {
        fprintf(stderr, "aks-ssh-access: ");
        fprintf(stderr, fmt, arg ?: "");
        fprintf(stderr, " (see --help)\n");
        return EX_USAGE;
}

int main(int argc, char *argv[]) {
        enum { ARG_DRY_RUN = 0x100, ARG_JSON, ARG_ROOT, ARG_IMDS_URL, ARG_IMDS_FILE, ARG_CONFIG, ARG_VERSION, ARG_REPAIR };
        static const struct option options[] = { { "help", no_argument, NULL, 'h' },
                                                 { "version", no_argument, NULL, ARG_VERSION },
                                                 { "dry-run", no_argument, NULL, ARG_DRY_RUN },
                                                 { "json", no_argument, NULL, ARG_JSON },
                                                 { "root", required_argument, NULL, ARG_ROOT },
                                                 { "imds-url", required_argument, NULL, ARG_IMDS_URL },
                                                 { "imds-file", required_argument, NULL, ARG_IMDS_FILE },
                                                 { "config", required_argument, NULL, ARG_CONFIG },
                                                 { "repair", no_argument, NULL, ARG_REPAIR },
                                                 {} };
        Options o = {};
        const char *verb = NULL;
        int c;

        log_open();
        opterr = 0;
        /* "+" stops at the first non-option so the verb can come first or after global options. */
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0 || optind < argc) {
                if (c < 0) {
                        if (verb)
                                return usage_error("unexpected argument \"%s\"", argv[optind]);
                        verb = argv[optind++];
                        continue;
                }
                switch (c) {
                case 'h': help(); return 0;
                case ARG_VERSION: printf("aks-ssh-access %s\n", VERSION); return 0;
                case ARG_DRY_RUN: o.dry_run = true; break;
                case ARG_JSON: o.json = true; break;
                case ARG_ROOT:
                        if (!*optarg)
                                return usage_error("--root needs a directory%s", NULL);
                        o.root = optarg;
                        break;
                case ARG_IMDS_URL:
                        if (strncmp(optarg, "http://", 7) != 0 && strncmp(optarg, "https://", 8) != 0)
                                return usage_error("--imds-url must be an http:// or https:// URL, not \"%s\"", optarg);
                        o.imds_url = optarg;
                        break;
                case ARG_IMDS_FILE: o.imds_file = optarg; break;
                case ARG_CONFIG: o.config_file = optarg; break;
                case ARG_REPAIR: o.repair = true; break;
                case '?':
                        /* optopt is a short option letter, or the value of a long option missing its argument */
                        if (optopt > 0 && optopt < 0x100)
                                return usage_error("unknown option -%s", (char[]) { (char) optopt, 0 });
                        return usage_error("unknown option or missing argument: %s", argv[optind - 1]);
                default: return usage_error("unexpected option%s", NULL);
                }
        }

        if (!verb)
                return usage_error("no command given; one of apply, status, verify, show-imds%s", NULL);
        if (o.imds_url && o.imds_file)
                return usage_error("--imds-url and --imds-file exclude each other%s", NULL);

        if (o.repair && !streq(verb, "verify"))
                return usage_error("--repair only goes with verify%s", NULL);
        if (streq(verb, "apply"))
                return cmd_apply(&o);
        if (o.dry_run)
                return usage_error("--dry-run only goes with apply%s", NULL);
        if (streq(verb, "show-imds"))
                return cmd_show_imds(&o);
        if (o.imds_url || o.imds_file || o.config_file)
                return usage_error("--imds-url/--imds-file/--config do not go with %s", verb);
        if (streq(verb, "status"))
                return cmd_status(&o);
        if (streq(verb, "verify"))
                return cmd_verify(&o);
        return usage_error("unknown command \"%s\"", verb);
}
