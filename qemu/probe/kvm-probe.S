/*
 * KVM probe firmware (64 KiB, loaded with -bios). From the reset vector it
 * enters protected mode, builds identity page tables in low RAM, enters long
 * mode and writes 0x2a to the isa-debug-exit port, so QEMU exits with status
 * (0x2a << 1) | 1 = 85.
 *
 * Why long mode: on the nested-KVM hosts this harness met, real mode and
 * 32-bit protected mode (SeaBIOS) run fine but the kernel hangs right after
 * its real-mode setup code; a real-mode-only probe passes there, this one
 * hangs exactly like the kernel. Rebuild with ./build.sh.
 */
.set BASE, 0xFFFF0000
.code16
.text
.org 0xF000
start16:
    cli
    lgdtl %cs:(gdt_desc)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $(BASE + start32)
.code32
start32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl $0x1000, %edi
    xorl %eax, %eax
    movl $0x1000, %ecx
    rep stosl
    movl $0x2003, 0x1000
    movl $0x3003, 0x2000
    movl $0x4003, 0x2018
    movl $0x83, 0x3000
    movl $0xFFE00083, 0x4FF8
    movl $0x1000, %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000000, %eax
    movl %eax, %cr0
    ljmp $0x18, $(BASE + start64)
.code64
start64:
    movb $0x2a, %al
    outb %al, $0xf4
1:  hlt
    jmp 1b
.p2align 3
gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF
    .quad 0x00CF92000000FFFF
    .quad 0x00AF9A000000FFFF
gdt_end:
gdt_desc:
    .word gdt_end - gdt - 1
    .long BASE + gdt
.code16
.org 0xFFF0
    jmp start16
.org 0x10000, 0xf4
