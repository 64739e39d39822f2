"""What a benchmark records about its machine (`benchmarks.machine`)."""

from benchmarks.machine import cpu_identity, describe_machine

# The first two processors of a 2-core AMD EPYC (Zen 3, family 25 model 1) host's /proc/cpuinfo, abridged.
ZEN3_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
stepping\t: 1
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid extd_apicid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline_timer aes xsave avx f16c rdrand hypervisor lahf_lm cmp_legacy cr8_legacy abm sse4a misalignsse 3dnowprefetch osvw topoext cpuid_fault vmmcall fsgsbase tsc_adjust bmi1 avx2 smep bmi2 erms invpcid rdseed adx smap clflushopt clwb sha_ni xsaveopt xsavec xgetbv1 xsaves clzero xsaveerptr arat umip vaes vpclmulqdq rdpid fsrm

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
flags\t\t: fpu avx512f
"""


def test_cpu_identity__reads_the_first_processor_family_model_and_vector_extensions():
    assert cpu_identity(ZEN3_CPUINFO) == {
        "cpu_family": "25",
        "cpu_model_number": "1",
        "vector_extensions": ["avx2", "fma"],  # no AVX-512 on Zen 3; the second processor's line is not read
    }


def test_cpu_identity__names_avx512_where_the_flags_have_it():
    text = "cpu family\t: 25\nmodel\t\t: 17\nflags\t\t: fpu sse avx2 fma avx512f avx512_bf16 avx512_vnni\n"
    assert cpu_identity(text)["vector_extensions"] == ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"]


def test_cpu_identity__without_a_cpuinfo_says_nothing_rather_than_guessing():
    assert cpu_identity("") == {"cpu_family": None, "cpu_model_number": None, "vector_extensions": []}


def test_describe_machine__records_the_identity_beside_the_model_name():
    machine = describe_machine(git_commit="abc")
    assert {"cpu", "cpu_family", "cpu_model_number", "vector_extensions", "cores"} <= set(machine)
    assert machine["git_commit"] == "abc"
