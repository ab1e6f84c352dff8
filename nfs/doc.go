// Package nfs mounts users' homes from an NFS server before their servers start: the spawn step
// between the credentials and the unit ([nfs] in the hub's config, README "NFS homes").
//
// # What a spawn does
//
// Step.Start, for user alice with the defaults (what = "{SERVER}:{EXPORT}/{USERNAME}", where =
// "{HOME}"):
//
//  1. Looks at PID 1's /proc/1/mountinfo (systemd's view; the hub's own unit may have a mount
//     namespace of its own). Something already mounted on the home (an fstab entry, a manual
//     mount, autofs on the home or a parent) is used as it is and never unmounted by the hub; so
//     is a home with a mount unit of its own (fstab), which systemd mounts for the server.
//  2. Otherwise connects to the server's NFS port (2049, or the port= option) for at most three
//     seconds: a refused connection, no route or an unknown name fails the spawn at once with
//     "NFS server unreachable", instead of after the mount timeout.
//  3. Starts a transient mount unit over D-Bus (the spawner's connection): home-alice.mount
//     (MountUnitName, systemd's path escaping), What=nas:/srv/homes/alice, Where=/home/alice,
//     Type=nfs4, Options= nfs.options, TimeoutSec= nfs.mount_timeout, Description
//     "jupyterhub-go: NFS home of alice". A failed mount is classified from the unit's Result and
//     mount.nfs4's lines in its journal ("No such file or directory" → "NFS export missing",
//     "Connection refused" → "NFS server unreachable", a timeout → "NFS mount timeout", after one
//     more connection attempt tells a dead server from a hung one), then reset, so no failed unit
//     stays behind.
//  4. Checks the home as alice: a transient oneshot unit, User=alice, WorkingDirectory=/home/alice,
//     RequiresMountsFor=/home/alice, running `test -r . && test -w . && test -x .`. A failure
//     becomes "permission denied" with what root can still see of the top directory (owner and
//     mode: root_squash stops root from looking inside but not from stat-ing the mount's root),
//     e.g. "on the NFS server it belongs to uid 1003, mode 0700"; a mount the step made for this
//     spawn is unmounted again at once.
//  5. Adds /home/alice to Job.RequiresMounts: the server's unit gets RequiresMountsFor=/home/alice,
//     so systemd orders it after the mount, and stops it should the mount be stopped.
//
// Why the check is a unit and not the hub itself: on a root-squashed export the hub, as root, is
// "nobody" to the server, so only a process running as alice can tell whether alice may use her
// home. Go cannot safely become alice for a moment: syscall.Setuid changes every thread of the
// process (since Go 1.16), so the hub would be alice; a forked child with
// SysProcAttr.Credential would be safe (the switch happens in the child) but would run in the
// hub's own sandbox and namespace. A transient unit runs where the server will run, through the
// same code in systemd that will start the server, and systemd's verdict (exit status 200 for a
// directory it cannot enter) is the server's.
//
// # The working directory and root_squash
//
// systemd enters a unit's WorkingDirectory= after it has switched to User=, so alice's server
// starts in her 0700 home although root may not enter it. systemd did it the other way round until
// v239: a 0700 home on a root-squashed export failed with 200/CHDIR (systemd issue #10568); pull
// request #10577, merged in October 2018 and first released in v240, moved
// apply_working_directory() after enforce_user(), with a comment that the working directory
// "might be on NFS". The order has stayed since: in src/core/execute.c up to v254 and in
// src/core/exec-invoke.c (sd-executor) from v255, where today's source still has it. So
// it holds on every systemd this hub supports: Ubuntu 22.04 (249), Debian 12 (252), Ubuntu 24.04
// (255), Debian 13 (257) and Arch (current). The end-to-end test checks it on Debian 12 in the
// test VM: the kernel's working directory is the 0700 home on a root-squashed export. The server's
// other root-side steps (ProtectHome=tmpfs and BindPaths= of the home, spawner.private_homes) only
// resolve the mount point itself, which needs no permission on the exported directory.
//
// # When a home is unmounted
//
// A home stays mounted while any unit needs it and is unmounted nfs.unmount_after (default one
// minute) after its user's last server stopped, so restarting a server does not remount it.
// "Needs" is decided twice: this hub's own servers claim the home in memory from the end of
// Start to their Stop (covering a server whose unit systemd does not know yet), and systemd says
// which live units require the mount or are ordered after it (RequiresMountsFor= makes both), so
// units outside the hub and servers adopted after a restart count too. When the grace has passed
// and something still uses the home, it is looked at again later (at least every 15 s); it is
// never stopped under a unit that needs it, which would also stop that unit (Requires=).
//
// Stop works from the stored record alone: it finds the user's mount units by their Description,
// so a hub restart (or a changed nfs.where) between start and stop changes nothing. A hub killed
// while an unmount was pending forgets the timer; ReconcileStep (servers.StepReconciler), run by
// the core at start once running servers are adopted, arms it again for every home of the hub's
// that no server uses. Stop never returns an error: the server's unit is gone by then, and a home
// left mounted is unmounted later.
package nfs
