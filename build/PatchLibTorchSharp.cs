// Inline MSBuild task (RoslynCodeTaskFactory): makes TorchSharp's libLibTorchSharp.so loadable on hosts whose
// libstdc++ lacks GLIBCXX_3.4.32 (Debian 12, Ubuntu 22.04). See Microsoft.ML.MtLora.targets for the why.
// Only System.* APIs: the task factory compiles this file at build time with no other references.
using System;
using System.IO;
using System.Text;

#if !MTLORA_ELF_PATCH_ONLY
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public sealed class MtLoraPatchLibTorchSharpTask : Task
{
    [Required] public ITaskItem[] Files { get; set; }
    [Required] public string Mode { get; set; }

    public override bool Execute()
    {
        if (!string.Equals(Mode, "true", StringComparison.OrdinalIgnoreCase) && LibTorchSharpElfPatch.HostHasVersion())
        {
            Log.LogMessage(MessageImportance.Low, "libstdc++ on this host provides " + LibTorchSharpElfPatch.Version + "; libLibTorchSharp.so left as shipped.");
            return true;
        }
        foreach (var item in Files)
        {
            var path = item.GetMetadata("FullPath");
            try
            {
                var stamp = File.GetLastWriteTimeUtc(path);
                var bytes = File.ReadAllBytes(path);
                var changed = LibTorchSharpElfPatch.Patch(bytes, out var report);
                if (changed)
                {
                    var tmp = path + ".mtlora-tmp";
                    File.WriteAllBytes(tmp, bytes);
                    File.Copy(tmp, path, true);
                    File.Delete(tmp);
                    File.SetLastWriteTimeUtc(path, stamp);   // keep incremental copies skipping it
                }
                Log.LogMessage(MessageImportance.Normal, "Microsoft.ML.MtLora: " + path + ": " + report);
            }
            catch (Exception e)
            {
                Log.LogWarning("Microsoft.ML.MtLora: could not patch {0} for this host's libstdc++ ({1}). TorchSharp may fail to load with 'GLIBCXX_3.4.32 not found'.", path, e.Message);
            }
        }
        return !Log.HasLoggedErrors;
    }
}
#endif

/// <summary>The ELF edit itself, kept free of MSBuild types so tests can run it.</summary>
public static class LibTorchSharpElfPatch
{
    public const string Version = "GLIBCXX_3.4.32";
    public const string Symbol = "_ZSt21ios_base_library_initv";

    public static bool HostHasVersion()
    {
        string[] candidates =
        {
            "/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
            "/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6",
            "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6",
        };
        foreach (var c in candidates)
        {
            if (!File.Exists(c)) continue;
            // The version names a library defines live in its .dynstr; a byte search is exact enough for a name this specific.
            var data = File.ReadAllBytes(c);
            return IndexOf(data, Encoding.ASCII.GetBytes(Version + "\0")) >= 0;
        }
        return false; // no libstdc++ found where we look: patching is harmless, so patch
    }

    private static int IndexOf(byte[] hay, byte[] needle)
    {
        for (int i = 0; i <= hay.Length - needle.Length; i++)
        {
            int j = 0;
            while (j < needle.Length && hay[i + j] == needle[j]) j++;
            if (j == needle.Length) return i;
        }
        return -1;
    }

    /// <summary>Marks the GLIBCXX_3.4.32 version need weak and the one symbol bound to it STB_WEAK (ELF64, little endian).</summary>
    public static bool Patch(byte[] b, out string report)
    {
        if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (b[4] != 2 || b[5] != 1) throw new InvalidDataException("not a little-endian ELF64 file");
        long shoff = BitConverter.ToInt64(b, 0x28);
        int shentsize = BitConverter.ToUInt16(b, 0x3A), shnum = BitConverter.ToUInt16(b, 0x3C);
        bool changed = false, foundVersion = false, foundSymbol = false;
        for (int s = 0; s < shnum; s++)
        {
            long sh = shoff + (long)s * shentsize;
            uint type = BitConverter.ToUInt32(b, (int)sh + 4);
            long off = BitConverter.ToInt64(b, (int)sh + 0x18), size = BitConverter.ToInt64(b, (int)sh + 0x20);
            int link = BitConverter.ToInt32(b, (int)sh + 0x28), info = BitConverter.ToInt32(b, (int)sh + 0x2C);
            long strOff = BitConverter.ToInt64(b, (int)(shoff + (long)link * shentsize) + 0x18);
            if (type == 0x6ffffffe) // SHT_GNU_verneed: Elf64_Verneed { u16 version, cnt; u32 file, aux, next }
            {
                long vn = off;
                for (int n = 0; n < info; n++)
                {
                    int cnt = BitConverter.ToUInt16(b, (int)vn + 2);
                    long aux = vn + BitConverter.ToUInt32(b, (int)vn + 8);
                    for (int a = 0; a < cnt; a++) // Elf64_Vernaux { u32 hash; u16 flags, other; u32 name, next }
                    {
                        if (CString(b, strOff + BitConverter.ToUInt32(b, (int)aux + 8)) == Version)
                        {
                            foundVersion = true;
                            ushort flags = BitConverter.ToUInt16(b, (int)aux + 4);
                            if ((flags & 0x2) == 0) { WriteU16(b, aux + 4, (ushort)(flags | 0x2)); changed = true; }
                        }
                        aux += BitConverter.ToUInt32(b, (int)aux + 12);
                    }
                    vn += BitConverter.ToUInt32(b, (int)vn + 12);
                }
            }
            else if (type == 11) // SHT_DYNSYM: Elf64_Sym { u32 name; u8 info, other; u16 shndx; u64 value, size }
            {
                for (long e = off; e + 24 <= off + size; e += 24)
                {
                    if (BitConverter.ToUInt16(b, (int)e + 6) != 0) continue; // defined here: not ours
                    if (CString(b, strOff + BitConverter.ToUInt32(b, (int)e)) != Symbol) continue;
                    foundSymbol = true;
                    byte stInfo = b[e + 4];
                    if ((stInfo >> 4) != 2) { b[e + 4] = (byte)((2 << 4) | (stInfo & 0xf)); changed = true; } // STB_WEAK
                }
            }
        }
        report = !foundVersion && !foundSymbol ? "does not need " + Version + "; unchanged"
               : changed ? "patched (" + Version + " need and " + Symbol + " made weak)"
               : "already patched";
        return changed;
    }

    private static string CString(byte[] b, long at)
    {
        long end = at;
        while (end < b.Length && b[end] != 0) end++;
        return Encoding.ASCII.GetString(b, (int)at, (int)(end - at));
    }

    private static void WriteU16(byte[] b, long at, ushort v) { b[at] = (byte)v; b[at + 1] = (byte)(v >> 8); }
}
