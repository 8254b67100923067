// SPDX-License-Identifier: MIT
//
// gc-churn MAPS: makes Mono's garbage collector grow its heap and give memory back, then
// writes /proc/self/maps to MAPS, read between two marker calls that tests/python/
// test_preload_mono.py finds in the trace: madvise(addr, 0, MADV_NORMAL), which changes
// nothing, at 1 MiB and 2 MiB. They are called through the process's global symbols
// ("__Internal"), so the interposer sees them as it sees Mono's own calls.
//
// Build: mcs gc-churn.cs -out:gc-churn.exe; run: mono gc-churn.exe MAPS

using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;

static class GcChurn
{
    [DllImport("__Internal")]
    static extern int madvise(IntPtr addr, UIntPtr length, int advice);

    const int MADV_NORMAL = 0;

    static long Grow(List<byte[]> keep, int round)
    {
        long bytes = 0;
        // Small objects fill the major heap's blocks; large ones go to the large-object space.
        for (int i = 0; i < 20000; i++) {
            var b = new byte[1024 + (i % 7) * 512];
            b[0] = (byte)i;
            keep.Add(b);
            bytes += b.Length;
        }
        for (int i = 0; i < 6 + round; i++) {
            var b = new byte[(2 + i % 3) << 20];
            b[b.Length - 1] = 1;
            keep.Add(b);
            bytes += b.Length;
        }
        return bytes;
    }

    static int Main(string[] args)
    {
        if (args.Length != 1) {
            Console.Error.WriteLine("usage: gc-churn.exe MAPS");
            return 2;
        }
        var keep = new List<byte[]>();
        long peak = 0;
        for (int round = 0; round < 5; round++) {
            peak = Math.Max(peak, Grow(keep, round));
            // Short-lived garbage churns the nursery.
            for (int i = 0; i < 100000; i++) {
                var t = new byte[64 + i % 200];
                t[0] = 1;
            }
            keep.Clear();
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
        }

        var buffer = new byte[4 << 20];
        int length = 0;
        using (var maps = new FileStream("/proc/self/maps", FileMode.Open, FileAccess.Read,
                                         FileShare.ReadWrite, 1, false)) {
            GC.Collect();
            madvise(new IntPtr(1 << 20), UIntPtr.Zero, MADV_NORMAL);
            int n;
            while ((n = maps.Read(buffer, length, buffer.Length - length)) > 0) {
                length += n;
            }
            madvise(new IntPtr(2 << 20), UIntPtr.Zero, MADV_NORMAL);
        }
        using (var output = new FileStream(args[0], FileMode.Create, FileAccess.Write)) {
            output.Write(buffer, 0, length);
        }
        Console.WriteLine("peak " + peak + " bytes kept");
        return 0;
    }
}
