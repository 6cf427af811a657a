"""Soundness and seconds of IBP / CROWN / α-CROWN (final layer, full) on graph networks (random weights):
    python benchmarks/bounds_graph.py"""
import time, torch, torch.nn as nn, torch.nn.functional as F
import advlab.certify.bounds as B
from advlab.models import build_model
from advlab.threat import ThreatModel
from advlab.attacks import run_attack
torch.manual_seed(0)
class Res(nn.Module):
    def __init__(s):
        super().__init__()
        s.register_buffer("mean", torch.tensor([0.4,0.5,0.6]).view(1,3,1,1))
        s.c1=nn.Conv2d(3,8,3,padding=1); s.bn=nn.BatchNorm2d(8); s.c2=nn.Conv2d(8,8,3,padding=1); s.c3=nn.Conv2d(8,8,3,padding=1)
        s.fc=nn.Linear(8*4*4,10)
    def forward(s,x):
        x=(x-s.mean)/0.25
        h=F.relu(s.bn(s.c1(x)))
        h=F.max_pool2d(h,2)
        r=h+s.c3(torch.relu(s.c2(h)))
        r=F.avg_pool2d(r,2)
        r=F.adaptive_avg_pool2d(r,(4,4))
        return s.fc(r.view(r.size(0),-1))
def mk(m):
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-.1,.1); mod.running_var.uniform_(.5,1.5)
    return m.eval()
nets={'small_cnn':(build_model('small_cnn','mnist',width=0.25).eval(),(1,28,28)),
      'lenet5':(build_model('lenet5','mnist').eval(),(1,28,28)),
      'res':(mk(Res()),(3,16,16)),
      'preact':(mk(build_model('preact_resnet18','cifar10',width=0.0625)),(3,32,32))}
for name,(m,shape) in nets.items():
    x=torch.rand(3,*shape)*0.8+0.1
    with torch.no_grad(): y=m(x).argmax(1)
    for norm,eps in (('linf',0.003),('l2',0.05)):
        t=ThreatModel(norm,eps)
        g=torch.Generator().manual_seed(0)
        pts=[t.random_start(x,g) for _ in range(20)]+[run_attack('pgd',m,x,y,threat=t,steps=10,generator=g).x_adv]
        with torch.no_grad():
            marg=torch.stack([ (lambda z: z.gather(1,y[:,None])-z)(m(p)) for p in pts]).amin(0)
        for meth in (['ibp','crown','alpha_crown_final','alpha_crown'] if name!='preact' else ['ibp','crown','alpha_crown_final']):
            t0=time.time(); b=B.margin_bounds(m,x,y,t,method=meth); dt=time.time()-t0
            ok=bool((b.lower<=marg+1e-4).all())
            print(name,norm,meth,'sound',ok,'mean lower',round(b.lower.mean().item(),3),'vs sampled',round(marg.mean().item(),3),f'{dt:.2f}s')
